//! Two network namespaces joined by a veth pair: a server side and a client side.
//!
//! ```text
//!  netns <name>s (server)                     netns <name>c (client)
//!  veth <name>s  server_ip/30  <────────────> veth <name>c  client_ip/30
//! ```
//!
//! `<name>` is the configuration's tag, this process's id and a counter, so two processes, or
//! two topologies of one test binary, never collide; it fits the 15 bytes of an interface
//! name. Each veth end is created directly inside its namespace, so nothing appears in the
//! host's; deleting a namespace deletes the veth end inside it, and with it the pair.
//! Dropping the [`Topology`] deletes the namespaces it created, and only those, on success,
//! error or panic.
//!
//! The client's checksum and segmentation offloads are off: AF_XDP (and a packet socket on
//! the other end) must see whole, checksummed frames, not partial checksums and
//! super-segments. The server's can be turned off too (a packet-level test reading the
//! Linux stack's replies on the wire).
//!
//! Who pays for a frame on a plain veth pair: the receiver's network stack runs inside the
//! sender's transmit, so the server's core pays for the client's TCP receive and the other way
//! round. With [`TopologyConfig::threaded_napi`], each end receives in a NAPI kernel thread
//! of its own (GRO on, which gives a veth end its NAPI; `threaded` on), pinned to that side's
//! CPU, as a NIC's receive runs in the softirq of the core its queue's interrupt is on: the
//! lab in which each side's core pays for its own receive (issue 12). The server's TSO is
//! then off (veth gives the peer's NAPI only packets from an end without TSO); its GSO stays
//! on, so super-segments are cut in software on the server's core.

use std::net::{Ipv4Addr, Ipv6Addr};
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};

use crate::netns::NetnsGuard;
use crate::{run, CommandError};

/// What to build.
#[derive(Debug, Clone)]
pub struct TopologyConfig {
    /// A short word (three letters) at the start of every name, saying who made it.
    pub tag: &'static str,
    pub server_ip: Ipv4Addr,
    pub client_ip: Ipv4Addr,
    /// RX and TX queues of each veth end (one per poller the server may run).
    pub queues: u32,
    /// Also turn the server's checksum and segmentation offloads off.
    pub server_offloads_off: bool,
    /// Turn GRO on at the client's end, as a real client's NIC has it (veth's default is
    /// off); threaded NAPI turns it on regardless.
    pub client_gro: bool,
    /// Receive in threaded NAPI on both ends, each side's threads pinned to its CPU (see the
    /// module doc); `None`: veth's default (receive inside the peer's transmit).
    pub threaded_napi: Option<NapiCpus>,
}

/// The CPU each side's NAPI threads are pinned to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NapiCpus {
    pub server: usize,
    pub client: usize,
}

/// The namespaces and the veth pair; see the module doc.
#[derive(Debug)]
pub struct Topology {
    /// The common part of every name (`<tag><pid>x<n>`).
    pub name: String,
    pub server_ns: String,
    pub client_ns: String,
    pub server_if: String,
    pub client_if: String,
    pub server_ip: Ipv4Addr,
    pub client_ip: Ipv4Addr,
    /// The NAPI kernel threads of the server's and the client's end, when threaded NAPI was
    /// asked for (thread ids, pinned).
    pub server_napi: Vec<u32>,
    pub client_napi: Vec<u32>,
    /// The namespace forwarding between the two, for a [`Topology::create_routed`] one.
    pub router: Option<Router>,
    /// The namespaces this value created, deleted on drop.
    created: Vec<String>,
}

/// The router of a [`Topology::create_routed`] topology: its namespace `<name>r` and its two
/// veth ends, `<name>rs` towards the server and `<name>rc` towards the client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Router {
    pub ns: String,
    pub to_server_if: String,
    pub to_client_if: String,
}

/// Interface names are at most 15 bytes (IFNAMSIZ less the NUL).
const IFNAME_MAX: usize = 15;

static COUNTER: AtomicU32 = AtomicU32::new(0);

/// `<tag><pid>x<n>`: unique per process and per topology of that process.
fn unique_name(tag: &str, pid: u32, n: u32) -> String {
    format!("{tag}{pid}x{n}")
}

/// The router's address on the /30 of `host`: the other host of the pair.
fn router_side(host: Ipv4Addr) -> Ipv4Addr {
    Ipv4Addr::from(u32::from(host) ^ 3)
}

/// The offload features that change what a measurement over the pair means (who segments,
/// who checksums, who coalesces), in `ethtool -k`'s names.
pub const REPORTED_OFFLOADS: [&str; 6] = [
    "rx-checksumming",
    "tx-checksumming",
    "scatter-gather",
    "tcp-segmentation-offload",
    "generic-segmentation-offload",
    "generic-receive-offload",
];

/// The offload settings of both veth ends, as `ethtool -k` reports them: `(feature, on)` for
/// each of [`REPORTED_OFFLOADS`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OffloadSettings {
    pub server: Vec<(String, bool)>,
    pub client: Vec<(String, bool)>,
}

/// The command line that turns checksum and segmentation offloads off on `ifname` in `ns`.
fn offloads_off<'a>(ns: &'a str, ifname: &'a str) -> [&'a str; 13] {
    [
        "ip", "netns", "exec", ns, "ethtool", "-K", ifname, "tx", "off", "tso", "off", "gso", "off",
    ]
}

/// The command line that turns GRO on at `ifname` in `ns` (a veth end gets its NAPI with it).
fn gro_on<'a>(ns: &'a str, ifname: &'a str) -> [&'a str; 9] {
    [
        "ip", "netns", "exec", ns, "ethtool", "-K", ifname, "gro", "on",
    ]
}

impl Topology {
    /// Builds the namespaces and the veth pair. On an error, what was already created is
    /// removed again before it returns.
    pub fn create(config: &TopologyConfig) -> Result<Topology, CommandError> {
        Self::build(config, false)
    }

    /// Three namespaces: the server's and the client's, each on a /30 of its own, and a
    /// router between them (`<name>r`, IPv4 forwarding on, its veth ends' offloads off), each
    /// end's other address on its /30 being the router's:
    ///
    /// ```text
    ///  server_ip/30 <name>s <──> <name>rs  (router)  <name>rc <──> <name>c client_ip/30
    /// ```
    ///
    /// What a path emulator needs (`crate::path`): a packet it holds in the router has left
    /// its sender's host, as on a real path (held in the sender's own OUTPUT hook, it would
    /// still count against the sending socket, whose small-queue limit then throttles it).
    /// `server_ip` and `client_ip` must be on different /30s, each as its first or second
    /// host (`.1`/`.2`, `.5`/`.6`...).
    pub fn create_routed(config: &TopologyConfig) -> Result<Topology, CommandError> {
        let host = |ip: Ipv4Addr| u32::from(ip) & 3;
        if u32::from(config.server_ip) >> 2 == u32::from(config.client_ip) >> 2
            || ![1, 2].contains(&host(config.server_ip))
            || ![1, 2].contains(&host(config.client_ip))
        {
            return Err(CommandError {
                command: "ip addr add".into(),
                message: format!(
                    "a routed topology needs {} and {} on different /30s, each as a host",
                    config.server_ip, config.client_ip
                ),
            });
        }
        Self::build(config, true)
    }

    fn build(config: &TopologyConfig, routed: bool) -> Result<Topology, CommandError> {
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let name = unique_name(config.tag, std::process::id(), n);
        let mut t = Topology {
            server_ns: format!("{name}s"),
            client_ns: format!("{name}c"),
            server_if: format!("{name}s"),
            client_if: format!("{name}c"),
            server_ip: config.server_ip,
            client_ip: config.client_ip,
            name: name.clone(),
            server_napi: Vec::new(),
            client_napi: Vec::new(),
            router: routed.then(|| Router {
                ns: format!("{name}r"),
                to_server_if: format!("{name}rs"),
                to_client_if: format!("{name}rc"),
            }),
            created: Vec::new(),
        };
        if t.server_if.len() + 1 > IFNAME_MAX {
            return Err(CommandError {
                command: "ip link add".into(),
                message: format!("interface name {} is too long", t.server_if),
            });
        }
        let mut namespaces = vec![t.server_ns.clone(), t.client_ns.clone()];
        namespaces.extend(t.router.as_ref().map(|r| r.ns.clone()));
        for ns in namespaces {
            run(&["ip", "netns", "add", &ns])?;
            t.created.push(ns);
        }
        let queues = config.queues.to_string();
        let veth = |ns: &str, ifname: &str, peer_ns: &str, peer: &str| {
            run(&[
                "ip",
                "-n",
                ns,
                "link",
                "add",
                ifname,
                "numrxqueues",
                &queues,
                "numtxqueues",
                &queues,
                "type",
                "veth",
                "peer",
                "name",
                peer,
                "numrxqueues",
                &queues,
                "numtxqueues",
                &queues,
                "netns",
                peer_ns,
            ])
        };
        let mut ends = vec![
            (t.server_ns.clone(), t.server_if.clone(), t.server_ip),
            (t.client_ns.clone(), t.client_if.clone(), t.client_ip),
        ];
        match &t.router {
            None => {
                veth(&t.server_ns, &t.server_if, &t.client_ns, &t.client_if)?;
            }
            Some(r) => {
                veth(&t.server_ns, &t.server_if, &r.ns, &r.to_server_if)?;
                veth(&r.ns, &r.to_client_if, &t.client_ns, &t.client_if)?;
                ends.push((
                    r.ns.clone(),
                    r.to_server_if.clone(),
                    router_side(t.server_ip),
                ));
                ends.push((
                    r.ns.clone(),
                    r.to_client_if.clone(),
                    router_side(t.client_ip),
                ));
            }
        }
        for (ns, ifname, ip) in &ends {
            let cidr = format!("{ip}/30");
            run(&["ip", "-n", ns, "addr", "add", &cidr, "dev", ifname])?;
            run(&["ip", "-n", ns, "link", "set", "lo", "up"])?;
            run(&["ip", "-n", ns, "link", "set", ifname, "up"])?;
        }
        if let Some(r) = &t.router {
            let via_server_side = router_side(t.server_ip).to_string();
            let via_client_side = router_side(t.client_ip).to_string();
            let client = t.client_ip.to_string();
            let server = t.server_ip.to_string();
            run(&[
                "ip",
                "-n",
                &t.server_ns,
                "route",
                "add",
                &client,
                "via",
                &via_server_side,
            ])?;
            run(&[
                "ip",
                "-n",
                &t.client_ns,
                "route",
                "add",
                &server,
                "via",
                &via_client_side,
            ])?;
            run(&[
                "ip",
                "netns",
                "exec",
                &r.ns,
                "sysctl",
                "-qw",
                "net.ipv4.ip_forward=1",
            ])?;
            run(&offloads_off(&r.ns, &r.to_server_if))?;
            run(&offloads_off(&r.ns, &r.to_client_if))?;
        }
        run(&offloads_off(&t.client_ns, &t.client_if))?;
        if config.server_offloads_off {
            run(&offloads_off(&t.server_ns, &t.server_if))?;
        }
        if config.client_gro {
            run(&gro_on(&t.client_ns, &t.client_if))?;
        }
        if let Some(cpus) = config.threaded_napi {
            // veth hands a packet to the receiving end's NAPI only when the sending end does
            // not do TSO (veth_skb_is_eligible_for_gro: TCP's packets never qualify
            // otherwise); with TSO on, the receive falls back to the sender's softirq, which
            // is what this mode exists to avoid. The client's TSO is already off; the server
            // keeps GSO, so its kernel stack still sends 64 KiB super-segments and cuts them
            // in software before the wire, where a NIC would cut them in hardware.
            run(&[
                "ip",
                "netns",
                "exec",
                &t.server_ns,
                "ethtool",
                "-K",
                &t.server_if,
                "tso",
                "off",
            ])?;
            // One end after the other, so the threads each one adds are known to be its own
            // (a kernel thread's name is cut to 15 bytes, too short to tell the ends apart).
            t.server_napi = threaded_napi(&t.server_ns, &t.server_if, cpus.server)?;
            t.client_napi = threaded_napi(&t.client_ns, &t.client_if, cpus.client)?;
        }
        Ok(t)
    }

    /// Makes the client's connections to the server use congestion control `algorithm`, by
    /// the route's `congctl` attribute. The namespace's own default
    /// (`net.ipv4.tcp_congestion_control`) cannot do it: outside the initial namespace it
    /// takes only what the host's `tcp_allowed_congestion_control` lists, and changing that
    /// would change the host. A routed topology only (its client reaches the server by a
    /// route of its own); an algorithm the kernel does not know is refused here.
    pub fn set_client_congestion_control(&self, algorithm: &str) -> Result<(), CommandError> {
        if self.router.is_none() {
            return Err(CommandError {
                command: "ip route replace".into(),
                message: "a client's congestion control is set on a routed topology only".into(),
            });
        }
        let via_client_side = router_side(self.client_ip).to_string();
        run(&[
            "ip",
            "-n",
            &self.client_ns,
            "route",
            "replace",
            &self.server_ip.to_string(),
            "via",
            &via_client_side,
            "congctl",
            algorithm,
        ])?;
        Ok(())
    }

    /// `ip netns exec <client ns> <program>`; add the arguments.
    pub fn in_client(&self, program: &str) -> Command {
        in_netns_command(&self.client_ns, program)
    }

    /// `ip netns exec <server ns> <program>`; add the arguments.
    pub fn in_server(&self, program: &str) -> Command {
        in_netns_command(&self.server_ns, program)
    }

    /// Moves the calling thread into the server namespace until the guard is dropped.
    pub fn enter_server(&self) -> std::io::Result<NetnsGuard> {
        NetnsGuard::enter(&self.server_ns)
    }

    /// What `ethtool -k` says of both ends now: a comparison states the offloads it ran
    /// with, since they decide who pays for segmentation and checksums.
    pub fn offload_settings(&self) -> Result<OffloadSettings, CommandError> {
        Ok(OffloadSettings {
            server: offloads_of(&self.server_ns, &self.server_if)?,
            client: offloads_of(&self.client_ns, &self.client_if)?,
        })
    }

    /// The MAC address of the client's veth end.
    pub fn client_mac(&self) -> Result<[u8; 6], CommandError> {
        mac_of(&self.client_ns, &self.client_if)
    }

    /// The MAC address of the server's veth end.
    pub fn server_mac(&self) -> Result<[u8; 6], CommandError> {
        mac_of(&self.server_ns, &self.server_if)
    }

    /// Gives both veth ends of a (not routed) pair an IPv6 address on one /64,
    /// [`SERVER_IP6`] and [`CLIENT_IP6`], usable at once: duplicate address detection is off
    /// for them (`nodad`), so no test waits a second for it. Each namespace has its own
    /// addresses, so every topology uses the same two.
    pub fn add_ipv6(&self) -> Result<(), CommandError> {
        if self.router.is_some() {
            return Err(CommandError {
                command: "ip addr add".into(),
                message: "IPv6 is given to a veth pair without a router only".into(),
            });
        }
        for (ns, ifname, ip) in [
            (&self.server_ns, &self.server_if, SERVER_IP6),
            (&self.client_ns, &self.client_if, CLIENT_IP6),
        ] {
            let cidr = format!("{ip}/64");
            run(&["ip", "-n", ns, "addr", "add", &cidr, "dev", ifname, "nodad"])?;
        }
        Ok(())
    }
}

/// The server's IPv6 address after [`Topology::add_ipv6`] (a unique local address, RFC 4193).
pub const SERVER_IP6: Ipv6Addr = Ipv6Addr::new(0xfd78, 0x6761, 0x7465, 0, 0, 0, 0, 1);
/// The client's IPv6 address after [`Topology::add_ipv6`].
pub const CLIENT_IP6: Ipv6Addr = Ipv6Addr::new(0xfd78, 0x6761, 0x7465, 0, 0, 0, 0, 2);

impl Drop for Topology {
    fn drop(&mut self) {
        for ns in self.created.drain(..) {
            let _ = Command::new("ip")
                .args(["netns", "del", &ns])
                .stderr(std::process::Stdio::null())
                .status();
        }
    }
}

fn in_netns_command(ns: &str, program: &str) -> Command {
    let mut c = Command::new("ip");
    c.args(["netns", "exec", ns, program]);
    c
}

/// [`REPORTED_OFFLOADS`] of `ifname` in `ns`, from `ethtool -k`.
pub fn offloads_of(ns: &str, ifname: &str) -> Result<Vec<(String, bool)>, CommandError> {
    let out = run(&["ip", "netns", "exec", ns, "ethtool", "-k", ifname])?;
    let text = String::from_utf8_lossy(&out.stdout);
    let found = parse_offloads(&text);
    if found.len() != REPORTED_OFFLOADS.len() {
        return Err(CommandError {
            command: format!("ip netns exec {ns} ethtool -k {ifname}"),
            message: format!("expected {REPORTED_OFFLOADS:?}, found {found:?}"),
        });
    }
    Ok(found)
}

/// The `feature: on|off [fixed]` lines of `ethtool -k` for [`REPORTED_OFFLOADS`], in that
/// order; features missing from the text are left out.
fn parse_offloads(text: &str) -> Vec<(String, bool)> {
    REPORTED_OFFLOADS
        .iter()
        .filter_map(|feature| {
            let value = text.lines().find_map(|l| {
                let (name, rest) = l.trim().split_once(':')?;
                (name == *feature).then_some(rest)
            })?;
            match value.split_whitespace().next()? {
                "on" => Some((feature.to_string(), true)),
                "off" => Some((feature.to_string(), false)),
                _ => None,
            }
        })
        .collect()
}

/// Turns on GRO (a veth end gets its NAPI instances with it) and threaded NAPI on `ifname`,
/// then pins the NAPI threads that appeared to `cpu`. An XDP program attached later keeps
/// them (veth reuses the NAPI it has).
fn threaded_napi(ns: &str, ifname: &str, cpu: usize) -> Result<Vec<u32>, CommandError> {
    run(&gro_on(ns, ifname))?;
    let prefix: String = format!("napi/{ifname}").chars().take(15).collect();
    let before = napi_threads(&prefix);
    let script = format!("echo 1 > /sys/class/net/{ifname}/threaded");
    run(&["ip", "netns", "exec", ns, "sh", "-c", &script])?;
    let fail = |message: String| CommandError {
        command: format!("threaded NAPI on {ifname} in {ns}"),
        message,
    };
    let start = std::time::Instant::now();
    let added = loop {
        let added: Vec<u32> = napi_threads(&prefix)
            .into_iter()
            .filter(|t| !before.contains(t))
            .collect();
        if !added.is_empty() {
            break added;
        }
        if start.elapsed() > std::time::Duration::from_secs(2) {
            return Err(fail("no NAPI thread appeared within 2 s".into()));
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    };
    for &tid in &added {
        crate::sys::pin_thread(tid, cpu)
            .map_err(|e| fail(format!("pinning thread {tid} to CPU {cpu}: {e}")))?;
    }
    Ok(added)
}

/// Threads whose name starts with `prefix` (kernel threads included), from /proc.
fn napi_threads(prefix: &str) -> Vec<u32> {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.flatten()
        .filter_map(|e| {
            let tid = e.file_name().to_str()?.parse::<u32>().ok()?;
            let comm = std::fs::read_to_string(e.path().join("comm")).ok()?;
            comm.trim_end().starts_with(prefix).then_some(tid)
        })
        .collect()
}

/// The MAC of `ifname` in `ns`, from `ip -o link show`.
pub fn mac_of(ns: &str, ifname: &str) -> Result<[u8; 6], CommandError> {
    let out = run(&["ip", "-n", ns, "-o", "link", "show", "dev", ifname])?;
    let text = String::from_utf8_lossy(&out.stdout);
    parse_link_mac(&text).ok_or_else(|| CommandError {
        command: format!("ip -n {ns} -o link show dev {ifname}"),
        message: format!("no MAC in {text:?}"),
    })
}

/// The address after `link/ether` in one line of `ip -o link show`.
fn parse_link_mac(line: &str) -> Option<[u8; 6]> {
    let mac = line
        .split_whitespace()
        .skip_while(|w| *w != "link/ether")
        .nth(1)?;
    let mut b = [0u8; 6];
    let mut parts = mac.split(':');
    for byte in &mut b {
        *byte = u8::from_str_radix(parts.next()?, 16).ok()?;
    }
    parts.next().is_none().then_some(b)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique_per_process_and_topology_and_fit_an_interface_name() {
        assert_eq!(unique_name("xgt", 4_194_304, 12), "xgt4194304x12");
        assert_ne!(unique_name("xgt", 10, 1), unique_name("xgt", 101, 1));
        assert_ne!(unique_name("xgt", 10, 11), unique_name("xgt", 101, 1));
        // The largest pid Linux hands out (2^22) and a few hundred topologies still fit.
        assert!(format!("{}s", unique_name("xgt", 4_194_304, 999)).len() <= IFNAME_MAX);
    }

    #[test]
    fn offloads_are_turned_off_in_the_namespace_of_the_interface() {
        assert_eq!(
            offloads_off("n1", "v1").join(" "),
            "ip netns exec n1 ethtool -K v1 tx off tso off gso off"
        );
    }

    #[test]
    fn a_routed_topology_needs_two_subnets_and_host_addresses() {
        let config = |server: [u8; 4], client: [u8; 4]| TopologyConfig {
            tag: "trt",
            server_ip: Ipv4Addr::from(server),
            client_ip: Ipv4Addr::from(client),
            queues: 1,
            server_offloads_off: true,
            client_gro: false,
            threaded_napi: None,
        };
        // Refused before anything is created (so without root too).
        for (server, client) in [
            ([10, 0, 0, 1], [10, 0, 0, 2]),
            ([10, 0, 0, 0], [10, 0, 0, 6]),
            ([10, 0, 0, 1], [10, 0, 0, 7]),
        ] {
            let e = Topology::create_routed(&config(server, client)).unwrap_err();
            assert!(e.message.contains("different /30s"), "{e}");
        }
    }

    #[test]
    fn commands_run_inside_the_right_namespace() {
        let t = Topology {
            name: "t".into(),
            server_ns: "ts".into(),
            client_ns: "tc".into(),
            server_if: "ts".into(),
            client_if: "tc".into(),
            server_ip: Ipv4Addr::new(10, 0, 0, 1),
            client_ip: Ipv4Addr::new(10, 0, 0, 2),
            server_napi: Vec::new(),
            client_napi: Vec::new(),
            router: None,
            // Nothing created: dropping this value runs no command.
            created: Vec::new(),
        };
        let c = t.in_client("curl");
        let args: Vec<_> = c.get_args().map(|a| a.to_string_lossy()).collect();
        assert_eq!(c.get_program(), "ip");
        assert_eq!(args, ["netns", "exec", "tc", "curl"]);
        let s = t.in_server("nginx");
        let args: Vec<_> = s.get_args().map(|a| a.to_string_lossy()).collect();
        assert_eq!(args, ["netns", "exec", "ts", "nginx"]);
    }

    #[test]
    fn offloads_are_read_from_ethtool_output() {
        let text = "Features for v:\nrx-checksumming: on\ntx-checksumming: off\n\
                    \ttx-checksum-ipv4: off [fixed]\nscatter-gather: on\n\
                    tcp-segmentation-offload: off\ngeneric-segmentation-offload: on\n\
                    generic-receive-offload: off\nlarge-receive-offload: off [fixed]\n";
        let got = parse_offloads(text);
        let want: Vec<(String, bool)> = [
            ("rx-checksumming", true),
            ("tx-checksumming", false),
            ("scatter-gather", true),
            ("tcp-segmentation-offload", false),
            ("generic-segmentation-offload", true),
            ("generic-receive-offload", false),
        ]
        .iter()
        .map(|(f, on)| (f.to_string(), *on))
        .collect();
        assert_eq!(got, want);
        // A feature ethtool does not list is left out, so the caller can tell.
        assert_eq!(parse_offloads("rx-checksumming: on\n").len(), 1);
        assert!(parse_offloads("generic-receive-offload: maybe\n").is_empty());
    }

    #[test]
    fn a_topology_reports_the_offloads_it_set() {
        if !crate::is_root() {
            eprintln!("SKIPPED: needs root (network namespaces)");
            return;
        }
        let t = Topology::create(&TopologyConfig {
            tag: "tno",
            server_ip: Ipv4Addr::new(10, 232, 0, 1),
            client_ip: Ipv4Addr::new(10, 232, 0, 2),
            queues: 1,
            server_offloads_off: false,
            client_gro: false,
            threaded_napi: None,
        })
        .unwrap();
        let o = t.offload_settings().unwrap();
        let on = |side: &[(String, bool)], f: &str| side.iter().find(|(n, _)| n == f).unwrap().1;
        for f in [
            "tx-checksumming",
            "tcp-segmentation-offload",
            "generic-segmentation-offload",
        ] {
            assert!(!on(&o.client, f), "client {f} should be off: {o:?}");
            assert!(
                on(&o.server, f),
                "server {f} left on (veth's default): {o:?}"
            );
        }
        assert_eq!(o.server.len(), REPORTED_OFFLOADS.len());
    }

    #[test]
    fn threaded_napi_pins_each_ends_receive_to_its_side() {
        if !crate::is_root() {
            eprintln!("SKIPPED: needs root (network namespaces)");
            return;
        }
        let t = Topology::create(&TopologyConfig {
            tag: "tnn",
            server_ip: Ipv4Addr::new(10, 232, 1, 1),
            client_ip: Ipv4Addr::new(10, 232, 1, 2),
            queues: 1,
            server_offloads_off: false,
            client_gro: false,
            threaded_napi: Some(NapiCpus {
                server: 1,
                client: 0,
            }),
        })
        .unwrap();
        let allowed = |tid: u32| {
            std::fs::read_to_string(format!("/proc/{tid}/status"))
                .unwrap()
                .lines()
                .find_map(|l| {
                    l.strip_prefix("Cpus_allowed_list:")
                        .map(|v| v.trim().to_string())
                })
                .unwrap()
        };
        assert!(
            !t.server_napi.is_empty() && !t.client_napi.is_empty(),
            "{t:?}"
        );
        for &tid in &t.server_napi {
            assert_eq!(allowed(tid), "1", "server NAPI thread {tid}");
        }
        for &tid in &t.client_napi {
            assert_eq!(allowed(tid), "0", "client NAPI thread {tid}");
        }
        let o = t.offload_settings().unwrap();
        let gro = |side: &[(String, bool)]| {
            side.iter()
                .find(|(n, _)| n == "generic-receive-offload")
                .unwrap()
                .1
        };
        assert!(gro(&o.server) && gro(&o.client), "{o:?}");
        // The server's TSO is off (or veth would bypass the client's NAPI); its GSO is on.
        let on = |side: &[(String, bool)], f: &str| side.iter().find(|(n, _)| n == f).unwrap().1;
        assert!(!on(&o.server, "tcp-segmentation-offload"), "{o:?}");
        assert!(on(&o.server, "generic-segmentation-offload"), "{o:?}");
        // The link carries traffic in this mode, and each end's receive runs in its own NAPI
        // threads: both ran while the pings went back and forth.
        let ran = |tids: &[u32]| -> u64 {
            tids.iter()
                .map(|tid| {
                    std::fs::read_to_string(format!("/proc/{tid}/schedstat"))
                        .unwrap()
                        .split_whitespace()
                        .nth(2)
                        .unwrap()
                        .parse::<u64>()
                        .unwrap()
                })
                .sum()
        };
        let (server_before, client_before) = (ran(&t.server_napi), ran(&t.client_napi));
        let ping = t
            .in_client("ping")
            .args(["-c", "5", "-i", "0.05", "-W", "2", &t.server_ip.to_string()])
            .output()
            .unwrap();
        assert!(ping.status.success(), "{ping:?}");
        assert!(
            ran(&t.server_napi) >= server_before + 5,
            "server NAPI ran too few times"
        );
        assert!(
            ran(&t.client_napi) >= client_before + 5,
            "client NAPI ran too few times"
        );
    }

    #[test]
    fn mac_is_read_from_ip_link_output() {
        let line = "7: v@if6: <BROADCAST,MULTICAST,UP,LOWER_UP> mtu 1500 qdisc noqueue state UP \
                    mode DEFAULT group default qlen 1000\\    link/ether 2a:0b:ff:10:00:9c brd \
                    ff:ff:ff:ff:ff:ff link-netns c";
        assert_eq!(
            parse_link_mac(line),
            Some([0x2a, 0x0b, 0xff, 0x10, 0x00, 0x9c])
        );
        assert_eq!(
            parse_link_mac("1: lo: <LOOPBACK> link/loopback 00:00:00"),
            None
        );
        assert_eq!(parse_link_mac("link/ether 2a:0b:ff"), None);
        assert_eq!(parse_link_mac("link/ether 2a:0b:ff:10:00:9c:01"), None);
        assert_eq!(parse_link_mac("link/ether zz:0b:ff:10:00:9c"), None);
    }
}
