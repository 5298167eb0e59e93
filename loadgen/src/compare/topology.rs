//! The comparison's test network: two network namespaces joined by a veth pair, named after
//! this process so that two runs (or a test beside a run) never collide, and removed when the
//! value is dropped, on success, error or panic.
//!
//! ```text
//!  netns <p>c (client: loadgen, wrk)        netns <p>g (server: xgate or nginx)
//!  veth <p>c 10.231.0.2/30  <────────────>  veth <p>g 10.231.0.1/30, one RX queue
//! ```
//!
//! The client's checksum and segmentation offloads are off, or AF_XDP would see partial
//! checksums and super-segments; the same topology serves every target, so they all meet the
//! same client.

use std::process::Command;

use super::CompareError;

pub const SERVER_IP: &str = "10.231.0.1";
pub const CLIENT_IP: &str = "10.231.0.2";

/// Runs a command to completion; its stderr goes into the error.
pub fn run(args: &[&str]) -> Result<(), CompareError> {
    let out = Command::new(args[0])
        .args(&args[1..])
        .output()
        .map_err(|e| CompareError::Command {
            command: args.join(" "),
            message: e.to_string(),
        })?;
    if !out.status.success() {
        return Err(CompareError::Command {
            command: args.join(" "),
            message: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        });
    }
    Ok(())
}

/// The namespaces and the veth pair. Dropping it deletes both namespaces (which deletes the
/// veth pair with them).
#[derive(Debug)]
pub struct Topology {
    pub server_ns: String,
    pub client_ns: String,
    pub server_if: String,
    pub client_if: String,
    created: Vec<String>,
}

impl Topology {
    pub fn create() -> Result<Self, CompareError> {
        let prefix = format!("lgc{}", std::process::id());
        let mut t = Topology {
            server_ns: format!("{prefix}g"),
            client_ns: format!("{prefix}c"),
            server_if: format!("{prefix}g"),
            client_if: format!("{prefix}c"),
            created: Vec::new(),
        };
        for ns in [t.server_ns.clone(), t.client_ns.clone()] {
            run(&["ip", "netns", "add", &ns])?;
            t.created.push(ns);
        }
        // One queue each way: one poller, pinned to the server's core.
        run(&[
            "ip",
            "-n",
            &t.server_ns,
            "link",
            "add",
            &t.server_if,
            "numrxqueues",
            "1",
            "numtxqueues",
            "1",
            "type",
            "veth",
            "peer",
            "name",
            &t.client_if,
            "numrxqueues",
            "1",
            "numtxqueues",
            "1",
            "netns",
            &t.client_ns,
        ])?;
        for (ns, ifname, ip) in [
            (&t.server_ns, &t.server_if, SERVER_IP),
            (&t.client_ns, &t.client_if, CLIENT_IP),
        ] {
            run(&[
                "ip",
                "-n",
                ns,
                "addr",
                "add",
                &format!("{ip}/30"),
                "dev",
                ifname,
            ])?;
            run(&["ip", "-n", ns, "link", "set", "lo", "up"])?;
            run(&["ip", "-n", ns, "link", "set", ifname, "up"])?;
        }
        run(&[
            "ip",
            "netns",
            "exec",
            &t.client_ns,
            "ethtool",
            "-K",
            &t.client_if,
            "tx",
            "off",
            "tso",
            "off",
            "gso",
            "off",
        ])?;
        Ok(t)
    }

    /// `ip netns exec <client ns>` followed by `args`.
    pub fn in_client(&self, program: &str) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &self.client_ns, program]);
        c
    }

    /// `ip netns exec <server ns>` followed by `args`.
    pub fn in_server(&self, program: &str) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &self.server_ns, program]);
        c
    }
}

impl Drop for Topology {
    fn drop(&mut self) {
        for ns in self.created.drain(..) {
            let _ = Command::new("ip")
                .args(["netns", "del", &ns])
                .stderr(std::process::Stdio::null())
                .status();
        }
        // xgate keeps its (empty) per-interface lock file after it exits, which suits an
        // interface that lives on; this one's name was made for this run and is gone now.
        let _ = std::fs::remove_file(format!("/run/xgate/{}.lock", self.server_if));
        // A gateway killed with SIGKILL (a test that failed midway) also leaves its state file
        // and its pinned maps; both are named after this run's interface.
        let _ = std::fs::remove_file(format!("/run/xgate/{}.json", self.server_if));
        let _ = std::fs::remove_dir_all(format!("/sys/fs/bpf/xgate/{}", self.server_if));
    }
}
