//! Typed access to the steering maps (layouts of `bpf/xgate.h`).
//!
//! Keys and values are the skeleton's generated types (`types::xgate_flow`, ...), built from
//! and read into the gateway's own types here, at the map boundary, and handed to libbpf as
//! their bytes ([`MapPod`]). The one flow key of the code is [`crate::tcp::FlowKey`]; the
//! `user_flows` key is made from it only on the way into the map.

use std::net::{Ipv6Addr, SocketAddrV4, SocketAddrV6};
use std::os::fd::RawFd;
use std::path::Path;

use libbpf_rs::{MapCore, MapFlags, MapHandle};

use super::skel::{types, XgateSkel};
use super::{handle, restrict, Result, SteeringError};
use crate::tcp::FlowKey;
use crate::wire::IpPair;

/// Names of the pinned maps, also their file names in the pin directory.
pub(super) const MAP_NAMES: [&str; 5] = ["xsks", "ports", "listeners", "user_flows", "stats"];

/// A generated map key or value: a `#[repr(C)]` struct of integers (and arrays of them), its
/// bytes exactly what the BPF program reads and writes.
///
/// # Safety
///
/// Only for `#[repr(C)]` types made of integers with no padding the compiler inserts: then
/// every byte of a value is initialised, and every byte pattern of its size is a valid value.
unsafe trait MapPod: Copy {
    /// The value's bytes, for libbpf.
    fn as_bytes(&self) -> &[u8] {
        // SAFETY: a live `Self` of `size_of::<Self>()` bytes, all initialised (no padding:
        // the trait's contract), borrowed for as long as `self`.
        unsafe {
            std::slice::from_raw_parts(
                (self as *const Self).cast::<u8>(),
                std::mem::size_of::<Self>(),
            )
        }
    }

    /// A value read back from libbpf's bytes; `None` when the length is not the type's.
    fn from_bytes(bytes: &[u8]) -> Option<Self> {
        if bytes.len() != std::mem::size_of::<Self>() {
            return None;
        }
        // SAFETY: exactly `size_of::<Self>()` readable bytes; any byte pattern is a valid
        // `Self` (the trait's contract); read_unaligned, as a byte buffer has alignment 1.
        Some(unsafe { std::ptr::read_unaligned(bytes.as_ptr().cast::<Self>()) })
    }
}

// Each size equals the sum of the fields' sizes, so the compiler added no padding: what
// `MapPod` needs, and the layouts of bpf/xgate.h.
const _: () = assert!(std::mem::size_of::<types::xgate_flow>() == 16 + 16 + 2 + 2);
const _: () = assert!(std::mem::size_of::<types::xgate_flow_owner>() == 4 + 4);
const _: () = assert!(std::mem::size_of::<types::xgate_listener>() == 8 + 4 + 4 + 16);
const _: () = assert!(std::mem::size_of::<types::xgate_stats>() == 8 * Stat::COUNT);

// SAFETY: #[repr(C)] { [u32; 4], [u32; 4], u16, u16 }, no padding (asserted above).
unsafe impl MapPod for types::xgate_flow {}
// SAFETY: #[repr(C)] { u32, u32 }, no padding (asserted above).
unsafe impl MapPod for types::xgate_flow_owner {}
// SAFETY: #[repr(C)] { u64, u32, u32, [u32; 4] }, no padding (asserted above).
unsafe impl MapPod for types::xgate_listener {}
// SAFETY: #[repr(C)] { [u64; COUNT] }, no padding (asserted above).
unsafe impl MapPod for types::xgate_stats {}

/// The `user_flows` key of a connection: addresses and ports in network byte order, as they
/// sit in the packet (what the XDP program compares without swapping), an IPv4 address
/// IPv4-mapped (`::ffff:a.b.c.d`, as `bpf/xgate.h` says). `None` for an IPv6 connection with
/// an IPv4-mapped address on either side: its key would be the IPv4 connection's. The XDP
/// program never steers such a packet (Linux drops them too), so no engine holds one.
fn flow_to_map(flow: &FlowKey) -> Option<types::xgate_flow> {
    let (local, remote) = match flow.inbound_ips() {
        IpPair::V4 { src, dst } => (dst.to_ipv6_mapped(), src.to_ipv6_mapped()),
        IpPair::V6 { src, dst } => {
            if dst.to_ipv4_mapped().is_some() || src.to_ipv4_mapped().is_some() {
                return None;
            }
            (dst, src)
        }
    };
    Some(types::xgate_flow {
        local_ip: address_words(local),
        remote_ip: address_words(remote),
        local_port: flow.local_port().to_be(),
        remote_port: flow.remote_port().to_be(),
    })
}

/// The connection of a `user_flows` key: IPv4 when both addresses are IPv4-mapped.
fn flow_from_map(key: &types::xgate_flow) -> FlowKey {
    let local = word_address(key.local_ip);
    let remote = word_address(key.remote_ip);
    let (local_port, remote_port) = (u16::from_be(key.local_port), u16::from_be(key.remote_port));
    match (local.to_ipv4_mapped(), remote.to_ipv4_mapped()) {
        (Some(l), Some(r)) => FlowKey::new_v4(
            SocketAddrV4::new(l, local_port),
            SocketAddrV4::new(r, remote_port),
        ),
        _ => FlowKey::new_v6(
            SocketAddrV6::new(local, local_port, 0, 0),
            SocketAddrV6::new(remote, remote_port, 0, 0),
        ),
    }
}

/// An address as the key's four words: its bytes in packet order.
fn address_words(addr: Ipv6Addr) -> [u32; 4] {
    let o = addr.octets();
    std::array::from_fn(|i| {
        u32::from_ne_bytes([o[4 * i], o[4 * i + 1], o[4 * i + 2], o[4 * i + 3]])
    })
}

fn word_address(words: [u32; 4]) -> Ipv6Addr {
    let mut o = [0u8; 16];
    for (chunk, w) in o.chunks_exact_mut(4).zip(words) {
        chunk.copy_from_slice(&w.to_ne_bytes());
    }
    Ipv6Addr::from(o)
}

/// A port's steering state (`ports` map; `XGATE_PORT_*`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PortState {
    /// Kernel path only.
    Off,
    /// New connections to user space.
    On,
    /// New SYNs to the kernel; user-space flows and cookie ACKs finish in user space.
    Draining,
}

impl PortState {
    fn to_raw(self) -> u32 {
        match self {
            PortState::Off => 0,
            PortState::On => 1,
            PortState::Draining => 2,
        }
    }
    fn from_raw(raw: u32) -> Option<Self> {
        match raw {
            0 => Some(PortState::Off),
            1 => Some(PortState::On),
            2 => Some(PortState::Draining),
            _ => None,
        }
    }
}

/// Counter indices of `struct xgate_stats` (`enum xgate_stat`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(usize)]
pub enum Stat {
    /// Redirected into an AF_XDP socket.
    Redirected = 0,
    /// Left to the kernel.
    Passed = 1,
    /// Pure SYNs redirected (rule 4).
    SynSteered = 2,
    /// Passed because a kernel socket owns the 4-tuple (rule 3).
    KernelOwned = 3,
    /// `user_flows` hits (rule 2).
    UserFlow = 4,
    /// Non-SYN segments of unknown flows redirected (rule 5).
    UnknownSteered = 5,
    /// Wanted a redirect but no socket sat on that queue: passed.
    NoXsk = 6,
    /// Kernel-path passive connections (sock_ops).
    KernelConns = 7,
    /// Global only: not TCP, a fragment, or ICMP not steered (rule 1).
    NotTcp = 8,
    /// Of `Redirected`, the IPv6 packets (TCP segments and ICMPv6 errors).
    RedirectedV6 = 9,
    /// Of `Redirected`, ICMP "fragmentation needed" and ICMPv6 "packet too big" quoting a
    /// `user_flows` connection (rule 1a), counted on its local port.
    IcmpSteered = 10,
    /// Of `KernelConns`, the IPv6 clients (an IPv4 client of a dual-stack listener is not one).
    KernelConnsV6 = 11,
    /// Passed: no listening socket serves the segment's destination address (rule 3a).
    NoListener = 12,
    /// Passed: the destination is not an address of this host (rule 3b).
    NotLocal = 13,
}

impl Stat {
    /// Number of counters per port.
    pub const COUNT: usize = 14;
}

/// Counters of one port (or the global slot), summed over CPUs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PortStats(pub [u64; Stat::COUNT]);

impl PortStats {
    /// One counter.
    pub fn get(&self, stat: Stat) -> u64 {
        self.0[stat as usize]
    }
}

/// A port the gateway listens on, as sock_ops recorded it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Listener {
    /// Port, host order.
    pub port: u16,
    /// Socket cookie of the listening socket.
    pub cookie: u64,
    /// Address family of the listening socket (`AF_INET` or `AF_INET6`).
    pub family: u32,
}

/// Handles on the five steering maps, independent of any skeleton: what `Steering` uses and
/// what a control process opens from the pins.
#[derive(Debug)]
pub struct SteeringMaps {
    xsks: MapHandle,
    ports: MapHandle,
    listeners: MapHandle,
    user_flows: MapHandle,
    stats: MapHandle,
}

fn bpf_err(what: String) -> impl FnOnce(libbpf_rs::Error) -> SteeringError {
    SteeringError::bpf(what)
}

impl SteeringMaps {
    pub(super) fn from_skel(skel: &XgateSkel<'_>) -> Result<Self> {
        Ok(Self {
            xsks: handle(&skel.maps.xsks, "xsks")?,
            ports: handle(&skel.maps.ports, "ports")?,
            listeners: handle(&skel.maps.listeners, "listeners")?,
            user_flows: handle(&skel.maps.user_flows, "user_flows")?,
            stats: handle(&skel.maps.stats, "stats")?,
        })
    }

    /// Opens the maps a running gateway pinned in `pin_dir` (e.g. `/sys/fs/bpf/xgate/eth0`).
    pub fn open_pinned(pin_dir: &Path) -> Result<Self> {
        let open = |name: &str| {
            let path = pin_dir.join(name);
            MapHandle::from_pinned_path(&path)
                .map_err(bpf_err(format!("opening pinned map {}", path.display())))
        };
        Ok(Self {
            xsks: open("xsks")?,
            ports: open("ports")?,
            listeners: open("listeners")?,
            user_flows: open("user_flows")?,
            stats: open("stats")?,
        })
    }

    /// Independent handles on the same maps (duplicated descriptors), e.g. one per poller
    /// thread, so that no thread shares a handle with another.
    pub fn try_clone(&self) -> Result<Self> {
        let dup = |map: &MapHandle, name: &'static str| {
            MapHandle::try_from(map).map_err(bpf_err(format!("duplicating map {name}")))
        };
        Ok(Self {
            xsks: dup(&self.xsks, "xsks")?,
            ports: dup(&self.ports, "ports")?,
            listeners: dup(&self.listeners, "listeners")?,
            user_flows: dup(&self.user_flows, "user_flows")?,
            stats: dup(&self.stats, "stats")?,
        })
    }

    fn all_mut(&mut self) -> [(&'static str, &mut MapHandle); 5] {
        [
            ("xsks", &mut self.xsks),
            ("ports", &mut self.ports),
            ("listeners", &mut self.listeners),
            ("user_flows", &mut self.user_flows),
            ("stats", &mut self.stats),
        ]
    }

    pub(super) fn pin_all(&self, dir: &Path) -> Result<()> {
        for (name, map) in self.all() {
            let path = dir.join(name);
            // MapHandle::pin needs &mut; pin a duplicate (same map).
            let mut dup =
                MapHandle::try_from(map).map_err(bpf_err(format!("duplicating map {name}")))?;
            dup.pin(&path)
                .map_err(bpf_err(format!("pinning {}", path.display())))?;
            restrict(&path)?;
        }
        Ok(())
    }

    pub(super) fn unpin_all(&mut self, dir: &Path) -> Result<()> {
        for (name, map) in self.all_mut() {
            let path = dir.join(name);
            map.unpin(&path)
                .map_err(bpf_err(format!("unpinning {}", path.display())))?;
        }
        Ok(())
    }

    fn all(&self) -> [(&'static str, &MapHandle); 5] {
        [
            ("xsks", &self.xsks),
            ("ports", &self.ports),
            ("listeners", &self.listeners),
            ("user_flows", &self.user_flows),
            ("stats", &self.stats),
        ]
    }

    /// Sets a port's state; creates its counters if it has none yet.
    pub fn set_port_state(&self, port: u16, state: PortState) -> Result<()> {
        self.ensure_stats(port)?;
        self.ports
            .update(
                &port.to_ne_bytes(),
                &state.to_raw().to_ne_bytes(),
                MapFlags::ANY,
            )
            .map_err(bpf_err(format!("setting port {port} {state:?}")))
    }

    /// A port's state; `None` when the port is not in `ports` (the same as off).
    pub fn port_state(&self, port: u16) -> Result<Option<PortState>> {
        let raw = self
            .ports
            .lookup(&port.to_ne_bytes(), MapFlags::ANY)
            .map_err(bpf_err(format!("reading port {port}")))?;
        match raw {
            None => Ok(None),
            Some(v) => {
                let b: [u8; 4] = v.as_slice().try_into().map_err(|_| SteeringError::Layout {
                    map: "ports",
                    got: v.len(),
                })?;
                Ok(PortState::from_raw(u32::from_ne_bytes(b)))
            }
        }
    }

    /// Removes a port from `ports` (same effect as off).
    pub fn remove_port(&self, port: u16) -> Result<()> {
        ignore_enoent(self.ports.delete(&port.to_ne_bytes()))
            .map_err(bpf_err(format!("removing port {port}")))
    }

    /// Marks a connection as user space's: its segments go to the AF_XDP socket whatever the
    /// port's state. Fails when `user_flows` is full (the connection must then be refused), and
    /// for an IPv6 connection with an IPv4-mapped address, which XDP never steers.
    pub fn add_user_flow(&self, flow: FlowKey, queue: u32) -> Result<()> {
        let owner = types::xgate_flow_owner { queue, _pad: 0 };
        let key = flow_to_map(&flow).ok_or(SteeringError::Ipv4MappedFlow(flow))?;
        self.user_flows
            .update(key.as_bytes(), owner.as_bytes(), MapFlags::ANY)
            // Lazily: this runs once per connection on the poller thread, and the message
            // allocates.
            .map_err(|e| bpf_err(format!("adding user flow {flow:?}"))(e))
    }

    /// Forgets a connection (it is closed). Missing entries are not an error, and an IPv6
    /// connection with an IPv4-mapped address, which the map cannot hold (`flow_to_map`), is
    /// always missing.
    pub fn remove_user_flow(&self, flow: FlowKey) -> Result<()> {
        let Some(key) = flow_to_map(&flow) else {
            return Ok(());
        };
        ignore_enoent(self.user_flows.delete(key.as_bytes()))
            .map_err(|e| bpf_err(format!("removing user flow {flow:?}"))(e))
    }

    /// Whether a connection is marked as user space's (never, for an IPv6 one with an
    /// IPv4-mapped address).
    pub fn has_user_flow(&self, flow: FlowKey) -> Result<bool> {
        let Some(key) = flow_to_map(&flow) else {
            return Ok(false);
        };
        self.user_flows
            .lookup(key.as_bytes(), MapFlags::ANY)
            .map(|v| v.is_some())
            .map_err(bpf_err(format!("looking up user flow {flow:?}")))
    }

    /// The RX queue whose poller owns a connection, if it is marked as user space's.
    pub fn user_flow_owner(&self, flow: FlowKey) -> Result<Option<u32>> {
        let Some(key) = flow_to_map(&flow) else {
            return Ok(None);
        };
        let value = self
            .user_flows
            .lookup(key.as_bytes(), MapFlags::ANY)
            .map_err(bpf_err(format!("looking up user flow {flow:?}")))?;
        Ok(value
            .and_then(|v| types::xgate_flow_owner::from_bytes(&v))
            .map(|owner| owner.queue))
    }

    /// All connections marked as user space's.
    pub fn user_flows(&self) -> Vec<FlowKey> {
        self.user_flows
            .keys()
            .filter_map(|k| types::xgate_flow::from_bytes(&k))
            .map(|k| flow_from_map(&k))
            .collect()
    }

    /// Deletes every `user_flows` entry (stale state of a previous run); returns how many.
    pub fn clear_user_flows(&self) -> Result<usize> {
        let keys: Vec<Vec<u8>> = self.user_flows.keys().collect();
        for k in &keys {
            ignore_enoent(self.user_flows.delete(k))
                .map_err(bpf_err("clearing user_flows".to_string()))?;
        }
        Ok(keys.len())
    }

    /// Ports the gateway listens on, as tagged by sock_ops.
    pub fn listeners(&self) -> Result<Vec<Listener>> {
        let mut out = Vec::new();
        for k in self.listeners.keys() {
            let Ok(kb) = <[u8; 2]>::try_from(k.as_slice()) else {
                continue;
            };
            let port = u16::from_ne_bytes(kb);
            if let Some(l) = self.listener(port)? {
                out.push(l);
            }
        }
        out.sort_by_key(|l| l.port);
        Ok(out)
    }

    /// The listener tag of one port.
    pub fn listener(&self, port: u16) -> Result<Option<Listener>> {
        let v = self
            .listeners
            .lookup(&port.to_ne_bytes(), MapFlags::ANY)
            .map_err(bpf_err(format!("reading listener {port}")))?;
        let Some(v) = v else { return Ok(None) };
        let l = types::xgate_listener::from_bytes(&v).ok_or(SteeringError::Layout {
            map: "listeners",
            got: v.len(),
        })?;
        Ok(Some(Listener {
            port,
            cookie: l.cookie,
            family: l.family,
        }))
    }

    /// A port's counters summed over CPUs; `None` when the port has no counters.
    /// Port 0 is the global slot.
    pub fn port_stats(&self, port: u16) -> Result<Option<PortStats>> {
        let per_cpu = self
            .stats
            .lookup_percpu(&port.to_ne_bytes(), MapFlags::ANY)
            .map_err(bpf_err(format!("reading stats of port {port}")))?;
        let Some(per_cpu) = per_cpu else {
            return Ok(None);
        };
        let mut sum = PortStats::default();
        for cpu in per_cpu {
            let stats = types::xgate_stats::from_bytes(&cpu).ok_or(SteeringError::Layout {
                map: "stats",
                got: cpu.len(),
            })?;
            for (total, v) in sum.0.iter_mut().zip(stats.v) {
                *total += v;
            }
        }
        Ok(Some(sum))
    }

    /// Counters that belong to no port.
    pub fn global_stats(&self) -> Result<PortStats> {
        Ok(self.port_stats(0)?.unwrap_or_default())
    }

    /// Creates zeroed counters for a port unless it has some.
    pub fn ensure_stats(&self, port: u16) -> Result<()> {
        let ncpu = libbpf_rs::num_possible_cpus()
            .map_err(bpf_err("counting possible CPUs".to_string()))?;
        let zero = vec![types::xgate_stats::default().as_bytes().to_vec(); ncpu];
        match self
            .stats
            .update_percpu(&port.to_ne_bytes(), &zero, MapFlags::NO_EXIST)
        {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == libbpf_rs::ErrorKind::AlreadyExists => Ok(()),
            Err(e) => Err(bpf_err(format!("creating stats of port {port}"))(e)),
        }
    }

    /// Puts an AF_XDP socket in `xsks` at its RX queue.
    pub fn insert_xsk(&self, queue: u32, socket_fd: RawFd) -> Result<()> {
        let fd = socket_fd as u32;
        self.xsks
            .update(&queue.to_ne_bytes(), &fd.to_ne_bytes(), MapFlags::ANY)
            .map_err(bpf_err(format!("inserting AF_XDP socket at queue {queue}")))
    }

    /// Takes the socket at `queue` out of `xsks` (its segments then pass to the kernel).
    pub fn remove_xsk(&self, queue: u32) -> Result<()> {
        ignore_enoent(self.xsks.delete(&queue.to_ne_bytes()))
            .map_err(bpf_err(format!("removing AF_XDP socket at queue {queue}")))
    }
}

fn ignore_enoent(r: libbpf_rs::Result<()>) -> libbpf_rs::Result<()> {
    match r {
        Err(e) if e.kind() == libbpf_rs::ErrorKind::NotFound => Ok(()),
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v4(local: &str, remote: &str) -> FlowKey {
        FlowKey::new_v4(local.parse().unwrap(), remote.parse().unwrap())
    }

    fn v6(local: &str, remote: &str) -> FlowKey {
        FlowKey::new(local.parse().unwrap(), remote.parse().unwrap()).expect("one family")
    }

    #[test]
    fn an_ipv4_flow_key_is_ipv4_mapped_in_packet_byte_order() {
        let flow = v4("10.0.0.1:80", "192.168.1.2:40000");
        let key = flow_to_map(&flow).expect("an IPv4 flow");
        let b = key.as_bytes();
        assert_eq!(b.len(), 36);
        assert_eq!(
            &b[0..16],
            &[0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 10, 0, 0, 1]
        );
        assert_eq!(
            &b[16..32],
            &[0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 192, 168, 1, 2]
        );
        assert_eq!(&b[32..34], &80u16.to_be_bytes());
        assert_eq!(&b[34..36], &40000u16.to_be_bytes());
        let back = types::xgate_flow::from_bytes(b).expect("36 bytes");
        assert_eq!(flow_from_map(&back), flow);
        assert!(types::xgate_flow::from_bytes(&b[..35]).is_none());
    }

    #[test]
    fn an_ipv6_flow_key_is_in_packet_byte_order() {
        let flow = v6("[2001:db8::1]:443", "[fd00:77::2]:40000");
        let key = flow_to_map(&flow).expect("an IPv6 flow");
        let b = key.as_bytes();
        let local: std::net::Ipv6Addr = "2001:db8::1".parse().unwrap();
        let remote: std::net::Ipv6Addr = "fd00:77::2".parse().unwrap();
        assert_eq!(&b[0..16], &local.octets());
        assert_eq!(&b[16..32], &remote.octets());
        assert_eq!(&b[32..34], &443u16.to_be_bytes());
        assert_eq!(&b[34..36], &40000u16.to_be_bytes());
        let back = types::xgate_flow::from_bytes(b).expect("36 bytes");
        assert_eq!(flow_from_map(&back), flow);
        assert!(flow_from_map(&back).is_ipv6());
    }

    #[test]
    fn ipv4_and_ipv6_flows_never_share_a_key() {
        let flows = [
            v4("10.0.0.1:80", "10.0.0.2:40000"),
            v4("0.0.0.0:80", "0.0.0.0:40000"),
            v6("[::]:80", "[::]:40000"),
            v6("[::1]:80", "[::1]:40000"),
            v6("[::a00:1]:80", "[::a00:2]:40000"), // IPv4-compatible, not mapped
            v6("[64:ff9b::a00:1]:80", "[64:ff9b::a00:2]:40000"), // NAT64 prefix
            v6("[fd00:77::1]:80", "[fd00:77::2]:40000"),
        ];
        for (i, a) in flows.iter().enumerate() {
            let ka = flow_to_map(a).expect("a key");
            assert_eq!(flow_from_map(&ka), *a, "{a:?}");
            for b in &flows[i + 1..] {
                let kb = flow_to_map(b).expect("a key");
                assert_ne!(ka.as_bytes(), kb.as_bytes(), "{a:?} and {b:?}");
            }
        }
        // The one IPv6 flow whose key would be the IPv4 one's has none.
        let mapped = v6("[::ffff:10.0.0.1]:80", "[::ffff:10.0.0.2]:40000");
        assert!(flow_to_map(&mapped).is_none());
        assert!(flow_to_map(&v6("[::ffff:10.0.0.1]:80", "[fd00::2]:40000")).is_none());
        assert!(flow_to_map(&v6("[fd00::1]:80", "[::ffff:10.0.0.2]:40000")).is_none());
        let e = SteeringError::Ipv4MappedFlow(mapped);
        assert!(e.to_string().contains("IPv4-mapped"), "{e}");
    }

    #[test]
    fn values_have_the_header_layouts() {
        let owner = types::xgate_flow_owner { queue: 3, _pad: 0 };
        assert_eq!(
            owner.as_bytes(),
            [&3u32.to_ne_bytes()[..], &[0; 4]].concat()
        );
        let mut raw = Vec::new();
        raw.extend_from_slice(&0x0102_0304_0506_0708u64.to_ne_bytes());
        raw.extend_from_slice(&10u32.to_ne_bytes());
        raw.extend_from_slice(&[0; 4]);
        raw.extend_from_slice(&[0xfd, 0x78, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]);
        let l = types::xgate_listener::from_bytes(&raw).expect("32 bytes");
        assert_eq!((l.cookie, l.family), (0x0102_0304_0506_0708, 10));
        assert_eq!(l.addr[0].to_ne_bytes(), [0xfd, 0x78, 0, 0]);
        assert!(types::xgate_listener::from_bytes(&raw[..16]).is_none());
        let raw: Vec<u8> = (1..=Stat::COUNT as u64)
            .flat_map(u64::to_ne_bytes)
            .collect();
        let stats = types::xgate_stats::from_bytes(&raw).expect("one u64 per counter");
        assert_eq!(stats.v[Stat::Passed as usize], 2);
        assert_eq!(stats.v[Stat::NotLocal as usize], Stat::COUNT as u64);
        assert_eq!(
            types::xgate_stats::default().as_bytes(),
            vec![0; 8 * Stat::COUNT]
        );
    }

    /// The value of `name` in bpf/xgate.h (`#define NAME v` or `NAME = v,`).
    fn header_value(name: &str) -> u32 {
        let header = include_str!("../../../bpf/xgate.h");
        for line in header.lines() {
            let mut words = line
                .split(|c: char| c.is_whitespace() || c == '=' || c == ',')
                .filter(|w| !w.is_empty());
            let first = words.next();
            let (found, value) = if first == Some("#define") {
                (words.next(), words.next())
            } else {
                (first, words.next())
            };
            if found == Some(name) {
                return value.unwrap().parse().unwrap();
            }
        }
        panic!("{name} not in xgate.h");
    }

    #[test]
    fn port_states_match_the_header() {
        for (state, name) in [
            (PortState::Off, "XGATE_PORT_OFF"),
            (PortState::On, "XGATE_PORT_ON"),
            (PortState::Draining, "XGATE_PORT_DRAINING"),
        ] {
            assert_eq!(state.to_raw(), header_value(name));
            assert_eq!(PortState::from_raw(state.to_raw()), Some(state));
        }
        assert_eq!(PortState::from_raw(3), None);
    }

    #[test]
    fn stat_indices_match_the_header() {
        for (stat, name) in [
            (Stat::Redirected, "XGATE_STAT_REDIRECTED"),
            (Stat::Passed, "XGATE_STAT_PASSED"),
            (Stat::SynSteered, "XGATE_STAT_SYN_STEERED"),
            (Stat::KernelOwned, "XGATE_STAT_KERNEL_OWNED"),
            (Stat::UserFlow, "XGATE_STAT_USER_FLOW"),
            (Stat::UnknownSteered, "XGATE_STAT_UNKNOWN_STEERED"),
            (Stat::NoXsk, "XGATE_STAT_NO_XSK"),
            (Stat::KernelConns, "XGATE_STAT_KERNEL_CONNS"),
            (Stat::NotTcp, "XGATE_STAT_NOT_TCP"),
            (Stat::RedirectedV6, "XGATE_STAT_REDIRECTED_V6"),
            (Stat::IcmpSteered, "XGATE_STAT_ICMP_STEERED"),
            (Stat::KernelConnsV6, "XGATE_STAT_KERNEL_CONNS_V6"),
            (Stat::NoListener, "XGATE_STAT_NO_LISTENER"),
            (Stat::NotLocal, "XGATE_STAT_NOT_LOCAL"),
        ] {
            assert_eq!(stat as u32, header_value(name), "{name}");
        }
        assert_eq!(Stat::COUNT as u32, header_value("XGATE_STAT_MAX"));
        assert_eq!(header_value("XGATE_STATS_GLOBAL"), 0);
    }

    /// XDP must steer nothing the engine's walk refuses (a steered packet it refuses is lost):
    /// its chain of IPv6 extension headers is never the longer one.
    #[test]
    fn the_xdp_walk_is_bounded_within_the_engine_s() {
        let xdp = header_value("XGATE_IPV6_MAX_EXT") as usize;
        assert!((1..=crate::wire::ipv6::MAX_EXTENSION_HEADERS).contains(&xdp));
    }
}
