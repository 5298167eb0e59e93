//! Loading and attaching xgate's BPF programs (`bpf/xgate.bpf.c`), and typed access to their
//! maps.
//!
//! [`Steering::load`] opens and loads the skeleton, attaches the XDP program to one interface
//! through a bpf_link (native mode, falling back to generic unless a mode is forced), attaches
//! the sock_ops program through a bpf_link on a cgroup v2 directory, and pins the maps under
//! `/sys/fs/bpf/xgate/<ifname>/` (mode 0600). Dropping it detaches both links and removes the
//! pins, so traffic falls back to the kernel.
//!
//! [`SteeringMaps`] is the map half alone: `Steering` hands one out, and a separate process
//! (`xgate status`, `xgate bypass`) opens the pinned maps with [`SteeringMaps::open_pinned`].
//!
//! Byte order follows `bpf/xgate.h`: ports are keys in host order, `user_flows` holds addresses
//! and ports as they sit in the packet, in either family (an IPv4 address IPv4-mapped).

mod maps;
pub mod skel;
mod sys;

pub use sys::cgroup2_root;

use std::fs::{self, File, OpenOptions};
use std::io;
use std::mem::MaybeUninit;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::{Path, PathBuf};

use libbpf_rs::skel::{OpenSkel, SkelBuilder};
use libbpf_rs::{Link, MapCore, MapHandle};

pub use maps::{Listener, PortState, PortStats, Stat, SteeringMaps};

use skel::{XgateSkel, XgateSkelBuilder};

/// Where xgate pins its maps: one directory per interface below this.
pub const PIN_ROOT: &str = "/sys/fs/bpf/xgate";
/// Where the per-interface lock files live (bpffs holds no regular files).
pub const LOCK_DIR: &str = "/run/xgate";

/// How the XDP program is attached.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum XdpMode {
    /// Native (driver) mode, falling back to generic when the driver refuses.
    #[default]
    Auto,
    /// Native (driver) mode only.
    Native,
    /// Generic (SKB) mode only.
    Generic,
}

/// What an attach ended up as.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AttachedMode {
    /// Driver mode (`XDP_FLAGS_DRV_MODE`).
    Native,
    /// Generic mode (`XDP_FLAGS_SKB_MODE`).
    Generic,
}

/// What the XDP program returned for a packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum XdpVerdict {
    /// `XDP_ABORTED`.
    Aborted,
    /// `XDP_DROP`.
    Drop,
    /// `XDP_PASS`: the kernel gets it.
    Pass,
    /// `XDP_TX`.
    Tx,
    /// `XDP_REDIRECT`: into an AF_XDP socket.
    Redirect,
    /// Anything else.
    Other(u32),
}

impl XdpVerdict {
    fn from_raw(raw: u32) -> Self {
        match raw {
            0 => XdpVerdict::Aborted,
            1 => XdpVerdict::Drop,
            2 => XdpVerdict::Pass,
            3 => XdpVerdict::Tx,
            4 => XdpVerdict::Redirect,
            other => XdpVerdict::Other(other),
        }
    }
}

/// Everything [`Steering::load`] needs.
#[derive(Debug, Clone)]
pub struct SteeringConfig {
    /// Interface the XDP program is attached to.
    pub ifname: String,
    /// cgroup v2 directory whose sockets sock_ops watches (the gateway's own cgroup).
    pub cgroup: PathBuf,
    /// XDP attach mode.
    pub xdp_mode: XdpMode,
    /// Directory under which `<ifname>/` holds the pins; [`PIN_ROOT`] by default.
    pub pin_root: PathBuf,
    /// Capacity of `user_flows` (the bypass path's connection bound).
    pub max_user_flows: u32,
    /// Whether the programs update the per-CPU counters.
    pub count_stats: bool,
}

impl SteeringConfig {
    /// Defaults for one interface and cgroup.
    pub fn new(ifname: impl Into<String>, cgroup: impl Into<PathBuf>) -> Self {
        Self {
            ifname: ifname.into(),
            cgroup: cgroup.into(),
            xdp_mode: XdpMode::Auto,
            pin_root: PathBuf::from(PIN_ROOT),
            max_user_flows: 262_144,
            count_stats: true,
        }
    }
}

/// Why loading, attaching or a map operation failed.
#[derive(Debug, thiserror::Error)]
pub enum SteeringError {
    /// The interface name does not resolve in this network namespace.
    #[error("interface {ifname:?}: {source}")]
    Interface {
        /// Interface name.
        ifname: String,
        /// What `if_nametoindex` said.
        source: io::Error,
    },
    /// A libbpf operation failed.
    #[error("{what}: {source}")]
    Bpf {
        /// What was being done.
        what: String,
        /// libbpf's error.
        source: libbpf_rs::Error,
    },
    /// Attaching XDP failed in every mode that was allowed.
    #[error("attaching XDP to {ifname:?} ({mode:?}): {source}")]
    XdpAttach {
        /// Interface name.
        ifname: String,
        /// Mode asked for.
        mode: XdpMode,
        /// The last attach error (EBUSY: another program owns the hook).
        source: io::Error,
    },
    /// A file-system operation failed.
    #[error("{what} {path:?}: {source}")]
    Io {
        /// What was being done.
        what: &'static str,
        /// Path involved.
        path: PathBuf,
        /// The OS error.
        source: io::Error,
    },
    /// The path is not on a cgroup v2 file system.
    #[error("{0:?} is not a cgroup v2 directory")]
    NotCgroup2(PathBuf),
    /// Another live gateway holds this interface.
    #[error("another xgate already steers {ifname:?} (lock {lock:?} is held)")]
    AlreadyRunning {
        /// Interface name.
        ifname: String,
        /// The lock file.
        lock: PathBuf,
    },
    /// An IPv6 connection with an IPv4-mapped address (`::ffff:a.b.c.d`) given to
    /// `user_flows`, whose key stores IPv4 addresses so (`bpf/xgate.h`): it would alias the
    /// IPv4 connection. The XDP program never steers such a packet (Linux drops them too), so
    /// no engine holds one.
    #[error("user_flows has no key for IPv6 flow {0:?}: an IPv4-mapped address")]
    Ipv4MappedFlow(crate::tcp::FlowKey),
    /// A value read from a map has an unexpected size.
    #[error("map {map}: unexpected value size {got}")]
    Layout {
        /// Map name.
        map: &'static str,
        /// Size read.
        got: usize,
    },
}

impl SteeringError {
    fn bpf(what: impl Into<String>) -> impl FnOnce(libbpf_rs::Error) -> Self {
        let what = what.into();
        move |source| SteeringError::Bpf { what, source }
    }
    fn io(what: &'static str, path: &Path) -> impl FnOnce(io::Error) -> Self {
        let path = path.to_path_buf();
        move |source| SteeringError::Io { what, path, source }
    }
}

/// Result alias for this module.
pub type Result<T, E = SteeringError> = std::result::Result<T, E>;

/// The loaded and attached steering programs of one interface.
///
/// Owns both links: dropping it detaches XDP first (traffic goes back to the kernel), then
/// sock_ops, and removes the pins.
pub struct Steering {
    // Field order is drop order: XDP goes before sock_ops.
    xdp_link: OwnedFd,
    xdp_prog: OwnedFd,
    // Held only to keep sock_ops attached; dropped after `xdp_link`.
    _sockops_link: Link,
    maps: SteeringMaps,
    attached: AttachedMode,
    ifname: String,
    ifindex: u32,
    pin_dir: PathBuf,
    _lock: File,
}

impl std::fmt::Debug for Steering {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Steering")
            .field("ifname", &self.ifname)
            .field("ifindex", &self.ifindex)
            .field("attached", &self.attached)
            .field("pin_dir", &self.pin_dir)
            .finish_non_exhaustive()
    }
}

impl Steering {
    /// Loads the programs, attaches them and pins the maps. See the module documentation.
    ///
    /// The interface is resolved, and XDP attached, in the calling thread's network namespace.
    /// sock_ops sees `listen()` calls made after this returns: create the listening sockets
    /// afterwards, or their ports are never tagged (and so never steered).
    pub fn load(config: &SteeringConfig) -> Result<Self> {
        let ifindex =
            sys::if_nametoindex(&config.ifname).map_err(|source| SteeringError::Interface {
                ifname: config.ifname.clone(),
                source,
            })?;
        sys::ensure_bpffs(&config.pin_root)?;
        if !sys::is_cgroup2(&config.cgroup)? {
            return Err(SteeringError::NotCgroup2(config.cgroup.clone()));
        }
        let lock = lock_interface(&config.ifname)?;

        let pin_dir = config.pin_root.join(&config.ifname);
        remove_stale_pins(&pin_dir)?;

        let mut storage = MaybeUninit::uninit();
        let mut open = XgateSkelBuilder::default()
            .open(&mut storage)
            .map_err(SteeringError::bpf("opening the BPF object"))?;
        open.maps
            .user_flows
            .set_max_entries(config.max_user_flows)
            .map_err(SteeringError::bpf("sizing user_flows"))?;
        if let Some(rodata) = open.maps.rodata_data.as_deref_mut() {
            rodata.xgate_count_stats = u8::from(config.count_stats);
        }
        let skel = open
            .load()
            .map_err(SteeringError::bpf("loading the BPF object (verifier)"))?;

        let maps = SteeringMaps::from_skel(&skel)?;
        maps.clear_user_flows()?;
        maps.ensure_stats(0)?;

        let (xdp_link, attached) = attach_xdp(&skel, ifindex, config)?;

        let cgroup = File::open(&config.cgroup)
            .map_err(SteeringError::io("opening cgroup", &config.cgroup))?;
        let sockops_link = skel
            .progs
            .xgate_sockops
            .attach_cgroup(cgroup.as_raw_fd())
            .map_err(SteeringError::bpf(format!(
                "attaching sock_ops to cgroup {:?}",
                config.cgroup
            )))?;

        let xdp_prog =
            skel.progs
                .xgate_xdp
                .as_fd()
                .try_clone_to_owned()
                .map_err(SteeringError::io(
                    "duplicating the XDP program fd",
                    Path::new("-"),
                ))?;

        // The links hold the programs and the map handles hold the maps: the skeleton (and
        // its program fds) can go now.
        drop(skel);

        // Pinned last, so that a failure above leaves nothing behind; a failure here removes
        // what was pinned (the links detach as they drop).
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&pin_dir)
            .map_err(SteeringError::io("creating pin directory", &pin_dir))?;
        if let Err(e) = maps.pin_all(&pin_dir) {
            let _ = remove_stale_pins(&pin_dir);
            let _ = fs::remove_dir(&pin_dir);
            return Err(e);
        }

        Ok(Self {
            xdp_link,
            xdp_prog,
            _sockops_link: sockops_link,
            maps,
            attached,
            ifname: config.ifname.clone(),
            ifindex,
            pin_dir,
            _lock: lock,
        })
    }

    /// The maps.
    pub fn maps(&self) -> &SteeringMaps {
        &self.maps
    }

    /// The mode XDP was attached in.
    pub fn attached_mode(&self) -> AttachedMode {
        self.attached
    }

    /// Interface index of the steered interface.
    pub fn ifindex(&self) -> u32 {
        self.ifindex
    }

    /// Interface name.
    pub fn ifname(&self) -> &str {
        &self.ifname
    }

    /// Directory holding the pins.
    pub fn pin_dir(&self) -> &Path {
        &self.pin_dir
    }

    /// Runs the attached XDP program once on `frame` (BPF_PROG_TEST_RUN) and returns its
    /// verdict, without sending anything: how the steering rules treat a crafted segment. Socket
    /// lookups (rule 3) see the calling thread's network namespace; the RX queue is 0.
    pub fn test_run_xdp(&self, frame: &[u8]) -> Result<XdpVerdict> {
        let raw = sys::xdp_test_run(self.xdp_prog.as_fd(), frame).map_err(SteeringError::io(
            "BPF_PROG_TEST_RUN",
            Path::new("xgate_xdp"),
        ))?;
        Ok(XdpVerdict::from_raw(raw))
    }

    /// Raw fd of the XDP bpf_link (for diagnostics).
    pub fn xdp_link_fd(&self) -> i32 {
        self.xdp_link.as_raw_fd()
    }
}

impl Drop for Steering {
    fn drop(&mut self) {
        // Links go with the fields; pins are removed here so the next start finds nothing.
        let _ = self.maps.unpin_all(&self.pin_dir);
        let _ = fs::remove_dir(&self.pin_dir);
        if let Some(root) = self.pin_dir.parent() {
            let _ = fs::remove_dir(root); // only when empty
        }
    }
}

fn attach_xdp(
    skel: &XgateSkel<'_>,
    ifindex: u32,
    config: &SteeringConfig,
) -> Result<(OwnedFd, AttachedMode)> {
    let prog = skel.progs.xgate_xdp.as_fd();
    let tries: &[AttachedMode] = match config.xdp_mode {
        XdpMode::Auto => &[AttachedMode::Native, AttachedMode::Generic],
        XdpMode::Native => &[AttachedMode::Native],
        XdpMode::Generic => &[AttachedMode::Generic],
    };
    let mut last = io::Error::from_raw_os_error(libc::EINVAL);
    for &mode in tries {
        match sys::xdp_link_create(prog, ifindex, mode) {
            Ok(fd) => return Ok((fd, mode)),
            // EBUSY means another program owns the hook: never fall back and displace it.
            Err(e) if e.raw_os_error() == Some(libc::EBUSY) => {
                last = e;
                break;
            }
            Err(e) => last = e,
        }
    }
    Err(SteeringError::XdpAttach {
        ifname: config.ifname.clone(),
        mode: config.xdp_mode,
        source: last,
    })
}

/// The lock file a running gateway holds for its interface (see `lock_interface`).
pub fn lock_path(ifname: &str) -> PathBuf {
    Path::new(LOCK_DIR).join(format!("{ifname}.lock"))
}

/// Holds `LOCK_DIR/<ifname>.lock` with `flock` for the process's lifetime, so a second gateway
/// on the same interface fails instead of unpinning the first one's maps. The kernel drops the
/// lock when the process dies, however it dies.
fn lock_interface(ifname: &str) -> Result<File> {
    let dir = Path::new(LOCK_DIR);
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(SteeringError::io("creating lock directory", dir))?;
    let path = lock_path(ifname);
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(SteeringError::io("opening lock", &path))?;
    match sys::try_flock(&file) {
        Ok(true) => Ok(file),
        Ok(false) => Err(SteeringError::AlreadyRunning {
            ifname: ifname.to_string(),
            lock: path,
        }),
        Err(e) => Err(SteeringError::io("locking", &path)(e)),
    }
}

/// Pins left by a gateway that died (we hold the lock, so nobody live owns them).
fn remove_stale_pins(pin_dir: &Path) -> Result<()> {
    let entries = match fs::read_dir(pin_dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(SteeringError::io("reading pin directory", pin_dir)(e)),
    };
    for entry in entries {
        let path = entry
            .map_err(SteeringError::io("reading pin directory", pin_dir))?
            .path();
        if maps::MAP_NAMES
            .iter()
            .any(|name| path.file_name() == Some(name.as_ref()))
        {
            fs::remove_file(&path).map_err(SteeringError::io("removing stale pin", &path))?;
        }
    }
    Ok(())
}

/// Opens a map handle independent of the skeleton's lifetime.
fn handle<M: MapCore>(map: &M, name: &'static str) -> Result<MapHandle>
where
    for<'a> MapHandle: TryFrom<&'a M, Error = libbpf_rs::Error>,
{
    MapHandle::try_from(map).map_err(SteeringError::bpf(format!("duplicating map {name}")))
}

/// Sets mode 0600 on a pin.
fn restrict(path: &Path) -> Result<()> {
    fs::set_permissions(path, fs::Permissions::from_mode(0o600))
        .map_err(SteeringError::io("chmod 0600", path))
}
