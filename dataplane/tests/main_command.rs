//! The README's main command (`scripts/run.sh`, its demo part) as an operator meets it: beside
//! another gateway on the same machine, and interrupted half-way. Root only (it builds network
//! namespaces); the demo uses this build's `xgate` (`XGATE=`), so nothing is rebuilt.
//!
//! `cargo test -p dataplane --test main_command` (about 30 s).

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() == 0 }
}

/// One run of `scripts/run.sh` with `COMPARE=none`, its output collected as it comes.
struct Demo {
    child: Child,
    output: Arc<Mutex<String>>,
}

impl Demo {
    fn start() -> Demo {
        let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../scripts/run.sh");
        let mut child = Command::new("bash")
            .arg(script)
            .env("COMPARE", "none")
            .env("XGATE", env!("CARGO_BIN_EXE_xgate"))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start scripts/run.sh");
        let output = Arc::new(Mutex::new(String::new()));
        for stream in [
            Box::new(child.stdout.take().unwrap()) as Box<dyn std::io::Read + Send>,
            Box::new(child.stderr.take().unwrap()),
        ] {
            let output = Arc::clone(&output);
            thread::spawn(move || {
                for line in BufReader::new(stream).lines().map_while(Result::ok) {
                    let mut o = output.lock().unwrap();
                    o.push_str(&line);
                    o.push('\n');
                }
            });
        }
        Demo { child, output }
    }

    fn output(&self) -> String {
        self.output.lock().unwrap().clone()
    }

    /// Waits until the output holds `needle`; panics with the output after `limit`.
    fn wait_for(&mut self, needle: &str, limit: Duration) {
        let start = Instant::now();
        while !self.output().contains(needle) {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!(
                    "run.sh exited ({status}) before {needle:?}:\n{}",
                    self.output()
                );
            }
            assert!(
                start.elapsed() < limit,
                "no {needle:?} after {limit:?}:\n{}",
                self.output()
            );
            thread::sleep(Duration::from_millis(100));
        }
    }

    /// The unique prefix of this run's namespaces, interfaces and work directory (`xr<pid>`).
    fn prefix(&self) -> String {
        let out = self.output();
        let line = out
            .lines()
            .find(|l| l.starts_with("== topology: netns "))
            .expect("topology line");
        let client_ns = line["== topology: netns ".len()..]
            .split_whitespace()
            .next()
            .unwrap();
        client_ns.strip_suffix('c').expect("<prefix>c").to_string()
    }

    fn wait(&mut self, limit: Duration) -> ExitStatus {
        let start = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                // Let the reader threads take the last lines.
                thread::sleep(Duration::from_millis(200));
                return status;
            }
            if start.elapsed() > limit {
                let _ = self.child.kill();
                panic!("run.sh still running after {limit:?}:\n{}", self.output());
            }
            thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Demo {
    fn drop(&mut self) {
        // A failed assertion must not leave the script running (ours, by PID).
        if matches!(self.child.try_wait(), Ok(None)) {
            // SAFETY: kill(2) on our own child's PID; no memory is involved.
            unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
            let _ = self.child.wait();
        }
    }
}

/// PIDs of processes whose command line mentions `needle`.
fn processes_mentioning(needle: &str) -> Vec<(u32, String)> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(raw) = std::fs::read(entry.path().join("cmdline")) else {
            continue;
        };
        let cmdline = String::from_utf8_lossy(&raw).replace('\0', " ");
        if cmdline.contains(needle) {
            found.push((pid, cmdline));
        }
    }
    found
}

fn netns_with_prefix(prefix: &str) -> Vec<String> {
    let out = Command::new("ip").args(["netns", "list"]).output().unwrap();
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .filter(|n| n.starts_with(prefix))
        .map(str::to_string)
        .collect()
}

/// Operators run one gateway per NIC: the demo's `xgate` commands must name their interface,
/// or `xgate bypass off` refuses with "several gateways run". Two demos at once each switch
/// their port while the other's gateway runs.
#[test]
fn the_main_command_runs_beside_another_gateway() {
    if !is_root() {
        eprintln!("skipped: needs root");
        return;
    }
    let mut first = Demo::start();
    first.wait_for("== switch", Duration::from_secs(120));
    let mut second = Demo::start();
    let (a, b) = (
        first.wait(Duration::from_secs(180)),
        second.wait(Duration::from_secs(180)),
    );
    for (demo, status) in [(&first, a), (&second, b)] {
        let out = demo.output();
        assert!(status.success(), "run.sh failed ({status}):\n{out}");
        assert!(!out.contains("several gateways run"), "{out}");
        assert!(
            out.contains(" failed\n") && out.contains("requests answered, 0 failed"),
            "{out}"
        );
        assert!(
            out.contains("network namespaces left by this run: 0"),
            "{out}"
        );
    }
}

/// A main command that stops half-way (here SIGTERM while its client loops run) ends what it
/// started: no client loop or curl, no namespace, no gateway, no lock file or pins.
#[test]
fn an_interrupted_main_command_leaves_no_process_behind() {
    if !is_root() {
        eprintln!("skipped: needs root");
        return;
    }
    let mut demo = Demo::start();
    demo.wait_for("== switch", Duration::from_secs(120));
    let prefix = demo.prefix();
    let work = format!("xgate-demo-{prefix}.");
    // The loops are running: what the check below looks for is there to be found.
    let start = Instant::now();
    while processes_mentioning(&work).len() < 2 {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "no client loops seen:\n{}",
            demo.output()
        );
        thread::sleep(Duration::from_millis(100));
    }
    thread::sleep(Duration::from_secs(1));
    // SAFETY: kill(2) on the script we started, by PID.
    assert_eq!(
        unsafe { libc::kill(demo.child.id() as i32, libc::SIGTERM) },
        0
    );
    let status = demo.wait(Duration::from_secs(60));
    assert!(
        !status.success(),
        "an interrupted run.sh must fail: {status}"
    );

    let start = Instant::now();
    loop {
        let left = processes_mentioning(&work);
        let ns = netns_with_prefix(&prefix);
        let gateways = processes_mentioning(&format!("--iface {prefix}g"));
        if left.is_empty() && ns.is_empty() && gateways.is_empty() {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "left behind: processes {left:?}, gateways {gateways:?}, namespaces {ns:?}\n{}",
            demo.output()
        );
        thread::sleep(Duration::from_millis(200));
    }
    let lock = format!("/run/xgate/{prefix}g.lock");
    let pins = format!("/sys/fs/bpf/xgate/{prefix}g");
    assert!(!std::path::Path::new(&lock).exists(), "{lock} left");
    assert!(!std::path::Path::new(&pins).exists(), "{pins} left");
}
