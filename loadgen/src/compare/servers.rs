//! The servers compared: `xgate run` (its bypass port and its kernel-path port, one process)
//! and nginx configured to give the same answers (the proxy scenarios' servers are in
//! [`super::proxy`]). Each runs in the server namespace, pinned to the server's core, and is
//! stopped (SIGTERM, then SIGKILL) by PID when dropped.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use super::topology::{Topology, SERVER_IP};
use super::CompareError;

/// The port of each target.
pub const BYPASS_PORT: u16 = 18080;
pub const KERNEL_PORT: u16 = 18081;
pub const NGINX_PORT: u16 = 18082;
pub const HAPROXY_PORT: u16 = 18083;

/// What is measured.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "kebab-case")]
pub enum Target {
    /// xgate's bypass path: XDP -> AF_XDP -> user-space TCP and HTTP.
    XgateBypass,
    /// xgate's kernel path: the kernel's TCP, io_uring, the same HTTP code.
    XgateKernel,
    /// nginx, one worker.
    Nginx,
    /// HAProxy, one thread: a proxy only, measured on the proxy scenarios.
    Haproxy,
}

impl Target {
    /// The gateway comparison's targets (every one answers the gateway's scenarios itself).
    pub const ALL: [Target; 3] = [Target::XgateBypass, Target::XgateKernel, Target::Nginx];

    /// The proxy comparison's targets: each forwards to the same origin ([`super::proxy`]).
    pub const PROXY: [Target; 4] = [
        Target::XgateBypass,
        Target::XgateKernel,
        Target::Nginx,
        Target::Haproxy,
    ];

    /// The `--target` name.
    pub fn arg(self) -> &'static str {
        match self {
            Target::XgateBypass => "xgate-bypass",
            Target::XgateKernel => "xgate-kernel",
            Target::Nginx => "nginx",
            Target::Haproxy => "haproxy",
        }
    }

    pub fn parse(arg: &str) -> Option<Target> {
        Self::PROXY.into_iter().find(|t| t.arg() == arg)
    }

    /// Whether this target is one `xgate run` process.
    pub fn is_xgate(self) -> bool {
        matches!(self, Target::XgateBypass | Target::XgateKernel)
    }

    pub fn name(self) -> &'static str {
        match self {
            Target::XgateBypass => "xgate bypass",
            Target::XgateKernel => "xgate kernel path",
            Target::Nginx => "nginx",
            Target::Haproxy => "HAProxy",
        }
    }

    pub fn port(self) -> u16 {
        match self {
            Target::XgateBypass => BYPASS_PORT,
            Target::XgateKernel => KERNEL_PORT,
            Target::Nginx => NGINX_PORT,
            Target::Haproxy => HAPROXY_PORT,
        }
    }

    pub fn addr(self) -> String {
        format!("{SERVER_IP}:{}", self.port())
    }
}

/// A server process, stopped when dropped.
pub struct Server {
    what: &'static str,
    child: Child,
}

impl Server {
    /// A server of `child`, a process spawned to serve (stopped when dropped).
    pub(crate) fn new(what: &'static str, child: Child) -> Self {
        Server { what, child }
    }

    /// SIGTERM, then SIGKILL after `grace`; returns whether it exited on SIGTERM.
    pub fn stop(mut self, grace: Duration) -> bool {
        self.stop_inner(grace)
    }

    fn stop_inner(&mut self, grace: Duration) -> bool {
        if matches!(self.child.try_wait(), Ok(Some(_))) {
            return true;
        }
        // SAFETY: kill(2) on the PID of a child we spawned and have not reaped (try_wait above
        // saw it running), so the PID cannot have been reused.
        unsafe { libc::kill(self.child.id() as libc::pid_t, libc::SIGTERM) };
        let start = Instant::now();
        while start.elapsed() < grace {
            if matches!(self.child.try_wait(), Ok(Some(_))) {
                return true;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        false
    }

    pub fn what(&self) -> &'static str {
        self.what
    }

    /// The server's process id (for /proc, e.g. its memory over a soak run).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Its exit status if it has exited (it is then reaped), else `None`.
    pub fn try_exited(&mut self) -> Option<std::process::ExitStatus> {
        self.child.try_wait().ok().flatten()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop_inner(Duration::from_secs(10));
    }
}

/// `xgate run` serving [`BYPASS_PORT`] on the bypass path and [`KERNEL_PORT`] on the kernel
/// path, its one poller and its kernel-path thread pinned to `core`; `config` (xgate's
/// `--config`) may set anything the flags here do not.
pub fn start_xgate(
    xgate: &Path,
    config: Option<&Path>,
    topo: &Topology,
    core: usize,
    log: &Path,
) -> Result<Server, CompareError> {
    let pollers = XgatePollers {
        cores: vec![core],
        kernel_core: core,
    };
    start_xgate_with(xgate, config, topo, &pollers, log)
}

/// Where `xgate run` puts its threads: one poller per RX queue, queue `q` pinned to
/// `cores[q]`, and its kernel-path thread.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct XgatePollers {
    pub cores: Vec<usize>,
    pub kernel_core: usize,
}

impl XgatePollers {
    /// `--queues N --core C0 --core C1 ... --kernel-core K`.
    fn args(&self) -> Vec<String> {
        let mut v = vec!["--queues".to_string(), self.cores.len().to_string()];
        for c in &self.cores {
            v.extend(["--core".to_string(), c.to_string()]);
        }
        v.extend(["--kernel-core".to_string(), self.kernel_core.to_string()]);
        v
    }
}

/// [`start_xgate`] with `pollers.cores.len()` queues (the topology must have as many).
pub fn start_xgate_with(
    xgate: &Path,
    config: Option<&Path>,
    topo: &Topology,
    pollers: &XgatePollers,
    log: &Path,
) -> Result<Server, CompareError> {
    let log_file = std::fs::File::create(log).map_err(|e| CompareError::io(log, e))?;
    let mut cmd = std::process::Command::new(xgate);
    cmd.arg("run");
    if let Some(c) = config {
        cmd.arg("--config").arg(c);
    }
    let mut child = cmd
        .args(["--iface", &topo.server_if, "--netns", &topo.server_ns])
        .args([
            "--port",
            &BYPASS_PORT.to_string(),
            "--bypass",
            &BYPASS_PORT.to_string(),
        ])
        .args(["--port", &KERNEL_PORT.to_string()])
        .args(pollers.args())
        .args(["--shutdown-grace-secs", "2"])
        .stdout(Stdio::piped())
        .stderr(log_file)
        .spawn()
        .map_err(|e| CompareError::Command {
            command: format!("{} run", xgate.display()),
            message: e.to_string(),
        })?;
    let stdout = child.stdout.take().expect("piped");
    let server = Server {
        what: "xgate",
        child,
    };
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(line) if line.starts_with("xgate: ready") => return Ok(server),
            Ok(_) => {}
            Err(_) => {
                let said = std::fs::read_to_string(log).unwrap_or_default();
                return Err(CompareError::Server {
                    what: "xgate",
                    message: format!("did not become ready: {}", said.trim()),
                });
            }
        }
    }
}

/// The nginx module that runs the JavaScript `/echo` handler (Debian: libnginx-mod-http-js).
pub const NJS_MODULE: &str = "/usr/lib/nginx/modules/ngx_http_js_module.so";

/// nginx giving xgate's answers: `GET /health` -> `ok`, `GET /bytes/{n}` -> the same `n`
/// bytes (files written here, for every `n` the scenarios ask), `POST /echo` -> the body
/// back (njs). One worker pinned to `core`, access log off, unlimited keep-alive requests,
/// and each answer served the cheapest way nginx's documentation gives: `/health` a static
/// `return`, the files with `sendfile` (no copy through user space) and `open_file_cache`
/// (no open/fstat/close per request). Not `tcp_nopush`: measured here, it cut nginx's
/// `GET /bytes/16384` to a third (`bench-results/nginx-tuning.md`).
pub fn start_nginx(
    nginx: &Path,
    topo: &Topology,
    core: usize,
    dir: &Path,
    byte_sizes: &[usize],
) -> Result<Server, CompareError> {
    start_nginx_with(nginx, topo, core, dir, byte_sizes, None)
}

/// nginx's TLS settings for the HTTPS comparison (`super::https`): a certificate and its key
/// (PEM), the rest fixed in [`nginx_tls`].
#[derive(Debug, Clone)]
pub struct NginxTls {
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// [`start_nginx`], with HTTPS on its port when `tls` is given.
pub fn start_nginx_with(
    nginx: &Path,
    topo: &Topology,
    core: usize,
    dir: &Path,
    byte_sizes: &[usize],
    tls: Option<&NginxTls>,
) -> Result<Server, CompareError> {
    let www = dir.join("www");
    let bytes_dir = www.join("bytes");
    std::fs::create_dir_all(&bytes_dir).map_err(|e| CompareError::io(&bytes_dir, e))?;
    for &n in byte_sizes {
        let body: Vec<u8> = (0..n).map(|i| b'a' + (i % 26) as u8).collect();
        let f = bytes_dir.join(n.to_string());
        std::fs::write(&f, body).map_err(|e| CompareError::io(&f, e))?;
    }
    let js = dir.join("echo.js");
    std::fs::write(
        &js,
        "function echo(r) {\n    r.headersOut['Content-Type'] = 'application/octet-stream';\n    r.return(200, r.requestText || '');\n}\nexport default { echo };\n",
    )
    .map_err(|e| CompareError::io(&js, e))?;
    let conf = dir.join("nginx.conf");
    std::fs::write(&conf, nginx_conf(dir, &www, &js, core, tls))
        .map_err(|e| CompareError::io(&conf, e))?;
    let log = dir.join("nginx.stderr");
    let log_file = std::fs::File::create(&log).map_err(|e| CompareError::io(&log, e))?;
    let child = topo
        .in_server(&nginx.to_string_lossy())
        .args(["-c", &conf.to_string_lossy(), "-p", &dir.to_string_lossy()])
        .args(["-e", &dir.join("error.log").to_string_lossy()])
        .stdout(Stdio::null())
        .stderr(log_file)
        .spawn()
        .map_err(|e| CompareError::Command {
            command: format!("{} -c {}", nginx.display(), conf.display()),
            message: e.to_string(),
        })?;
    let mut server = Server::new("nginx", child);
    let scheme = if tls.is_some() { "https" } else { "http" };
    let url = format!("{scheme}://{}/health", Target::Nginx.addr());
    wait_answering(
        &mut server,
        || {
            let mut c = topo.in_client("curl");
            // Any certificate: this only asks whether nginx answers yet.
            c.arg("--insecure");
            c
        },
        &url,
        &[log, dir.join("error.log")],
    )?;
    Ok(server)
}

/// Waits until `GET url`, sent by the curl `curl()` makes (in the namespace it enters),
/// answers 200; fails when the server exits first (with what its `logs` say) or after 15 s.
pub(crate) fn wait_answering(
    server: &mut Server,
    curl: impl Fn() -> std::process::Command,
    url: &str,
    logs: &[PathBuf],
) -> Result<(), CompareError> {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        if let Some(st) = server.try_exited() {
            let said: String = logs
                .iter()
                .map(|l| std::fs::read_to_string(l).unwrap_or_default())
                .collect();
            return Err(CompareError::Server {
                what: server.what,
                message: format!("exited ({st}): {}", said.trim()),
            });
        }
        let probe = curl()
            .args([
                "-s",
                "-o",
                "/dev/null",
                "-w",
                "%{http_code}",
                "--max-time",
                "1",
            ])
            .arg(url)
            .output();
        if probe.is_ok_and(|o| o.stdout == b"200") {
            return Ok(());
        }
        if Instant::now() >= deadline {
            return Err(CompareError::Server {
                what: server.what,
                message: format!("did not answer GET {url} with 200 within 15 s"),
            });
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// nginx's `worker_cpu_affinity` bit mask for one CPU (lowest CPU rightmost).
pub(crate) fn affinity_mask(core: usize) -> String {
    let mut mask = vec![b'0'; core + 1];
    mask[0] = b'1';
    String::from_utf8(mask).expect("ascii")
}

/// nginx's HTTPS at its best by its documentation ("Configuring HTTPS servers",
/// ngx_http_ssl_module): a session cache shared by the workers and session tickets (so both
/// kinds of client resume), TLS 1.2 and 1.3, X25519 then P-256 for the key exchange (what
/// OpenSSL prefers), HTTP/1.1 only (no `http2`). The certificate is the comparison's one ECDSA
/// P-256 certificate, the same for every target.
pub fn nginx_tls_text(tls: &NginxTls) -> String {
    format!(
        r#"        ssl_certificate {cert};
        ssl_certificate_key {key};
        ssl_protocols TLSv1.2 TLSv1.3;
        ssl_ecdh_curve X25519:prime256v1;
        ssl_session_cache shared:SSL:10m;
        ssl_session_timeout 1h;
        ssl_session_tickets on;
"#,
        cert = tls.cert.display(),
        key = tls.key.display(),
    )
}

fn nginx_conf(dir: &Path, www: &Path, js: &Path, core: usize, tls: Option<&NginxTls>) -> String {
    let mask = affinity_mask(core);
    let (ssl, tls_settings) = match tls {
        Some(t) => (" ssl", nginx_tls_text(t)),
        None => ("", String::new()),
    };
    format!(
        r#"load_module {NJS_MODULE};
worker_processes 1;
worker_cpu_affinity {mask};
daemon off;
pid {pid};
error_log {err} warn;
events {{
    worker_connections 8192;
    multi_accept on;
}}
http {{
    access_log off;
    server_tokens off;
    keepalive_requests 1000000000;
    keepalive_timeout 300s;
    sendfile on;
    open_file_cache max=64 inactive=600s;
    open_file_cache_valid 600s;
    client_body_buffer_size 64k;
    client_body_in_single_buffer on;
    client_max_body_size 16m;
    client_body_temp_path {tmp}/body;
    proxy_temp_path {tmp}/proxy;
    fastcgi_temp_path {tmp}/fastcgi;
    uwsgi_temp_path {tmp}/uwsgi;
    scgi_temp_path {tmp}/scgi;
    js_import echo from {js};
    server {{
        listen {ip}:{port}{ssl} backlog=1024;
{tls_settings}        location = /health {{
            default_type "text/plain; charset=utf-8";
            return 200 "ok";
        }}
        location /bytes/ {{
            root {www};
            default_type application/octet-stream;
        }}
        location = /echo {{
            js_content echo.echo;
        }}
    }}
}}
"#,
        pid = dir.join("nginx.pid").display(),
        err = dir.join("error.log").display(),
        tmp = dir.display(),
        js = js.display(),
        ip = SERVER_IP,
        port = NGINX_PORT,
        www = www.display(),
    )
}

/// Finds a program in PATH (or returns the path given when it exists).
pub fn find_program(name: &str) -> Option<PathBuf> {
    let p = Path::new(name);
    if p.components().count() > 1 {
        return p.exists().then(|| p.to_path_buf());
    }
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .chain([PathBuf::from("/usr/sbin"), PathBuf::from("/sbin")])
            .map(|d| d.join(name))
            .find(|f| f.is_file())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn target_names_round_trip() {
        for t in Target::PROXY {
            assert_eq!(Target::parse(t.arg()), Some(t));
        }
        assert_eq!(Target::parse("apache"), None);
        assert!(Target::ALL.iter().all(|t| Target::PROXY.contains(t)));
        assert_eq!(affinity_mask(3), "1000");
    }

    #[test]
    fn xgate_gets_a_core_per_queue() {
        let p = XgatePollers {
            cores: vec![0, 1],
            kernel_core: 1,
        };
        assert_eq!(
            p.args().join(" "),
            "--queues 2 --core 0 --core 1 --kernel-core 1"
        );
    }

    #[test]
    fn nginx_mask_pins_the_given_core() {
        let c = nginx_conf(
            Path::new("/d"),
            Path::new("/d/www"),
            Path::new("/d/e.js"),
            1,
            None,
        );
        assert!(c.contains("worker_cpu_affinity 10;"), "{c}");
        let c = nginx_conf(
            Path::new("/d"),
            Path::new("/d/www"),
            Path::new("/d/e.js"),
            0,
            None,
        );
        assert!(c.contains("worker_cpu_affinity 1;"), "{c}");
        assert!(c.contains("access_log off;") && c.contains("keepalive_requests 1000000000;"));
        // nginx at its best: the documented settings for static answers.
        for setting in ["sendfile on;", "open_file_cache max=", "return 200"] {
            assert!(c.contains(setting), "{setting} missing:\n{c}");
        }
        assert!(!c.contains("tcp_nopush"), "{c}");
        assert!(!c.contains("ssl"), "plain HTTP: {c}");
        let tls = NginxTls {
            cert: "/d/c.pem".into(),
            key: "/d/k.pem".into(),
        };
        let c = nginx_conf(
            Path::new("/d"),
            Path::new("/d/www"),
            Path::new("/d/e.js"),
            1,
            Some(&tls),
        );
        for setting in [
            "listen 10.231.0.1:18082 ssl backlog=1024;",
            "ssl_certificate /d/c.pem;",
            "ssl_certificate_key /d/k.pem;",
            "ssl_session_cache shared:SSL:10m;",
            "ssl_session_tickets on;",
            "worker_processes 1;",
            "worker_cpu_affinity 10;",
        ] {
            assert!(c.contains(setting), "{setting} missing:\n{c}");
        }
        assert!(!c.contains("http2"), "{c}");
    }
}
