//! The gateway's configuration: a TOML file ([`ConfigFile`]), the command line laid over it,
//! and the one typed [`RunConfig`] the gateway starts from.
//!
//! Precedence: built-in defaults, then the file, then command-line flags. Every key of the
//! file is optional and names the library setting it fills, so the defaults live in one place
//! (the `Default` of each library type) and the file only says what differs. Unknown keys are
//! refused (a typo must not silently leave a default in force), and every value is checked
//! here, before anything is attached, with a message that names the key and the problem:
//! `tcp.mss: 100 is out of range (536..=1960 with frames of 2048 bytes)`.
//!
//! `docs/configuration.md` lists every key with its default; `xgate check-config FILE` runs
//! the same checks without starting anything.

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, SocketAddrV4};
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::afxdp::{BindMode, Wakeup};
use crate::app::{App, AppConfig, RouteConfig, StaticError, StaticFiles, StaticLimits};
use crate::bpf::XdpMode;
use crate::gateway::{BypassConfig, CgroupPlacement, PortConfig};
use crate::http::HttpLimits;
use crate::kernel::KernelConfig;
use crate::logging::{LogConfig, LogFormat};
use crate::time::Duration;

/// How the kernel path is driven.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KernelDrive {
    /// `KernelPath::run` on its own thread, optionally pinned. (Driving it from the AF_XDP
    /// poller's loop was measured slower; see docs/architecture.md.)
    Thread { core: Option<usize> },
}

/// Everything `xgate run` starts from.
#[derive(Debug, Clone)]
pub struct RunConfig {
    pub gateway: BypassConfig,
    pub kernel: KernelConfig,
    pub kernel_drive: KernelDrive,
    /// `None`: create and remove `<cgroup2 root>/xgate-<iface>`.
    pub cgroup: Option<PathBuf>,
    pub netns: Option<String>,
    pub shutdown_grace: Duration,
    /// Where the admin endpoint (`/metrics`, `/status`) listens; `None`: no endpoint.
    pub admin_listen: Option<SocketAddrV4>,
    /// The log's levels and format (`RUST_LOG` overrides the levels).
    pub log: LogConfig,
}

/// A configuration the gateway refuses, naming the key (`tcp.mss`, `ports[2].port`, or the
/// command-line flag) and the problem.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    #[error("reading {path}: {message}")]
    Read { path: PathBuf, message: String },
    /// A TOML syntax error, a value of the wrong type or an unknown key (toml's message
    /// names the line, the column and the key).
    #[error("{path}: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("{key}: {problem}")]
    Invalid { key: String, problem: String },
}

fn invalid(key: impl Into<String>, problem: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        key: key.into(),
        problem: problem.into(),
    }
}

/// The file's schema. See `docs/configuration.md`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConfigFile {
    /// Interface to serve.
    pub interface: Option<String>,
    /// Address the kernel listeners bind to.
    pub listen_addr: Option<Ipv4Addr>,
    /// listen() backlog of the kernel listeners.
    pub backlog: Option<u32>,
    /// On SIGINT/SIGTERM, how long connections may take to finish before they are cut.
    pub shutdown_grace_secs: Option<u64>,
    /// cgroup v2 directory whose sockets sock_ops watches (default: created per interface).
    pub cgroup: Option<PathBuf>,
    /// Network namespace (a name under /var/run/netns) to enter first.
    pub netns: Option<String>,
    /// Served ports.
    #[serde(default)]
    pub ports: Vec<PortEntry>,
    #[serde(default)]
    pub bypass: BypassSection,
    #[serde(default)]
    pub kernel_path: KernelPathSection,
    #[serde(default)]
    pub tcp: TcpSection,
    #[serde(default)]
    pub http: HttpSection,
    #[serde(default)]
    pub app: AppSection,
    #[serde(default)]
    pub admin: AdminSection,
    #[serde(default)]
    pub log: LogSection,
}

/// `[log]`: the gateway's log on stderr.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogSection {
    /// `RUST_LOG`-style directives (`info`, `warn,dataplane::afxdp=debug`); `RUST_LOG` wins.
    pub level: Option<String>,
    /// `text` or `json`.
    pub format: Option<LogFormatKey>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum LogFormatKey {
    Text,
    Json,
}

/// `[admin]`: the operator's endpoint.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AdminSection {
    /// `ADDR:PORT` of `/metrics` (Prometheus) and `/status` (JSON); unset: none.
    pub listen: Option<SocketAddrV4>,
}

/// `[[ports]]`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PortEntry {
    pub port: u16,
    /// Start on the bypass path (default: the kernel path).
    #[serde(default)]
    pub bypass: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum XdpModeKey {
    Auto,
    Native,
    Generic,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum BindModeKey {
    Auto,
    Copy,
    ZeroCopy,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum WakeupKey {
    Auto,
    On,
    Off,
}

impl From<XdpModeKey> for XdpMode {
    fn from(k: XdpModeKey) -> Self {
        match k {
            XdpModeKey::Auto => XdpMode::Auto,
            XdpModeKey::Native => XdpMode::Native,
            XdpModeKey::Generic => XdpMode::Generic,
        }
    }
}

impl From<BindModeKey> for BindMode {
    fn from(k: BindModeKey) -> Self {
        match k {
            BindModeKey::Auto => BindMode::Auto,
            BindModeKey::Copy => BindMode::Copy,
            BindModeKey::ZeroCopy => BindMode::ZeroCopy,
        }
    }
}

impl From<WakeupKey> for Wakeup {
    fn from(k: WakeupKey) -> Self {
        match k {
            WakeupKey::Auto => Wakeup::Auto,
            WakeupKey::On => Wakeup::On,
            WakeupKey::Off => Wakeup::Off,
        }
    }
}

/// `[bypass]`: XDP, AF_XDP and the pollers.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BypassSection {
    /// RX queues to serve (default: the interface's channel count).
    pub queues: Option<u32>,
    /// CPU of each queue's poller, by queue index.
    pub cores: Option<Vec<usize>>,
    pub xdp_mode: Option<XdpModeKey>,
    pub bind_mode: Option<BindModeKey>,
    pub need_wakeup: Option<WakeupKey>,
    /// UMEM frames per socket.
    pub frame_count: Option<u32>,
    /// Bytes per UMEM frame: 2048 or 4096.
    pub frame_size: Option<u32>,
    /// Descriptors per AF_XDP ring: a power of two.
    pub ring_size: Option<u32>,
    /// RX descriptors taken per batch.
    pub batch_size: Option<usize>,
    /// How long an idle poller spins before it sleeps.
    pub idle_spin_us: Option<u64>,
    /// Capacity of the `user_flows` map (raised to queues x tcp.max_connections).
    pub max_user_flows: Option<u32>,
}

/// `[kernel_path]`: the io_uring path.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KernelPathSection {
    /// CPU to pin the kernel path's thread to.
    pub core: Option<usize>,
    pub max_connections: Option<usize>,
    pub ring_entries: Option<u32>,
    pub recv_buffers: Option<u16>,
    pub recv_buffer_len: Option<usize>,
    pub output_buffer_len: Option<usize>,
    pub linger_ms: Option<u64>,
}

/// `[tcp]`: the bypass path's TCP.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TcpSection {
    /// Connections per RX queue.
    pub max_connections: Option<usize>,
    pub rx_buffer: Option<usize>,
    pub tx_buffer: Option<usize>,
    pub max_ooo_bytes: Option<usize>,
    pub mss: Option<u16>,
    pub window_scale: Option<u8>,
    pub initial_rto_ms: Option<u64>,
    pub min_rto_ms: Option<u64>,
    pub max_rto_ms: Option<u64>,
    pub max_retransmissions: Option<u32>,
    pub delayed_ack_ms: Option<u64>,
    pub time_wait_secs: Option<u64>,
    pub max_time_wait: Option<usize>,
    pub fin_wait_2_timeout_secs: Option<u64>,
    pub idle_timeout_secs: Option<u64>,
    pub challenge_ack_limit: Option<u32>,
    pub syn_hints: Option<usize>,
}

/// `[http]`: limits and timeouts of both paths.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpSection {
    pub max_header_bytes: Option<usize>,
    pub max_headers: Option<usize>,
    pub max_uri_len: Option<usize>,
    pub max_body_len: Option<u64>,
    pub header_timeout_secs: Option<u64>,
    pub idle_timeout_secs: Option<u64>,
}

/// `[app]`: what the gateway answers.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AppSection {
    /// `GET /`, `GET /health`, `GET /bytes/{n}`, `POST /echo`.
    pub builtin_routes: Option<bool>,
    /// Largest `n` of `GET /bytes/{n}`.
    pub max_bytes_len: Option<usize>,
    /// A directory whose files are read into memory (at start and at each reload) and
    /// answered as `GET`/`HEAD` routes; an absolute path.
    pub static_dir: Option<PathBuf>,
    /// The URL path the directory is mapped under (default `/`).
    pub static_prefix: Option<String>,
    /// Bound on the bytes of all the files together.
    pub static_max_bytes: Option<u64>,
    /// Bound on the number of files.
    pub static_max_files: Option<usize>,
    #[serde(default)]
    pub routes: Vec<RouteEntry>,
}

/// `[[app.routes]]`: a static answer.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouteEntry {
    #[serde(default = "default_method")]
    pub method: String,
    pub path: String,
    #[serde(default = "default_status")]
    pub status: u16,
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    #[serde(default)]
    pub body: String,
}

fn default_method() -> String {
    "GET".into()
}

fn default_status() -> u16 {
    200
}

impl ConfigFile {
    /// Reads and parses a file (unknown keys refused); values are checked by [`build`].
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError::Read {
            path: path.to_path_buf(),
            message: e.to_string(),
        })?;
        Self::parse(&text).map_err(|message| ConfigError::Parse {
            path: path.to_path_buf(),
            message,
        })
    }

    /// Parses TOML text.
    pub fn parse(text: &str) -> Result<Self, String> {
        toml::from_str(text).map_err(|e| e.to_string().trim_end().to_string())
    }
}

/// What a reload may change: the routes and the HTTP limits (both paths).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReloadConfig {
    pub app: AppConfig,
    pub http: HttpLimits,
}

/// Re-reads the configuration of a running gateway (`xgate reload`, SIGHUP): the same file
/// and the same command-line values, checked as at start. Only `[http]` and `[app]` may
/// change; any other change is refused with the keys that would need a restart.
#[derive(Debug, Clone)]
pub struct Reloader {
    path: Option<PathBuf>,
    overrides: Overrides,
    /// The file as last loaded (at start, then at each accepted reload).
    loaded: ConfigFile,
}

impl Reloader {
    /// `loaded` is the file the gateway started with (`None` path: started without a file).
    pub fn new(path: Option<PathBuf>, overrides: Overrides, loaded: ConfigFile) -> Self {
        Reloader {
            path,
            overrides,
            loaded,
        }
    }

    /// The new routes and limits, or why not (the running ones then stay).
    pub fn reread(&mut self) -> Result<ReloadConfig, ConfigError> {
        let Some(path) = &self.path else {
            return Err(invalid(
                "--config",
                "the gateway was started without a configuration file: nothing to reload",
            ));
        };
        let file = ConfigFile::load(path)?;
        let changed = self.loaded.restart_only_changes(&file);
        if !changed.is_empty() {
            return Err(invalid(
                changed.join(", "),
                "changed, and only [http] and [app] can change without a restart \
                 (switch ports with `xgate bypass`); nothing was reloaded",
            ));
        }
        let built = build(&file, &self.overrides)?;
        self.loaded = file;
        Ok(ReloadConfig {
            app: built.gateway.app,
            http: built.gateway.engine.http,
        })
    }
}

impl ConfigFile {
    /// The keys (top-level names and sections) other than `[http]` and `[app]` whose values
    /// differ in `new`.
    pub fn restart_only_changes(&self, new: &ConfigFile) -> Vec<&'static str> {
        let ConfigFile {
            interface,
            listen_addr,
            backlog,
            shutdown_grace_secs,
            cgroup,
            netns,
            ports,
            bypass,
            kernel_path,
            tcp,
            http: _,
            app: _,
            admin,
            log,
        } = self;
        let mut changed = Vec::new();
        let mut check = |name, same: bool| {
            if !same {
                changed.push(name);
            }
        };
        check("interface", *interface == new.interface);
        check("listen_addr", *listen_addr == new.listen_addr);
        check("backlog", *backlog == new.backlog);
        check(
            "shutdown_grace_secs",
            *shutdown_grace_secs == new.shutdown_grace_secs,
        );
        check("cgroup", *cgroup == new.cgroup);
        check("netns", *netns == new.netns);
        check("[[ports]]", *ports == new.ports);
        check("[bypass]", *bypass == new.bypass);
        check("[kernel_path]", *kernel_path == new.kernel_path);
        check("[tcp]", *tcp == new.tcp);
        check("[admin]", *admin == new.admin);
        check("[log]", *log == new.log);
        changed
    }
}

/// Command-line values laid over the file: `Some` (or a non-empty list) wins.
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    pub interface: Option<String>,
    /// Replaces the file's ports when not empty; `bypass` then names those on the bypass path.
    pub ports: Vec<u16>,
    pub bypass: Vec<u16>,
    pub cores: Vec<usize>,
    pub listen_addr: Option<Ipv4Addr>,
    pub backlog: Option<u32>,
    pub xdp_mode: Option<XdpMode>,
    pub bind_mode: Option<BindMode>,
    pub queues: Option<u32>,
    pub kernel_core: Option<usize>,
    pub cgroup: Option<PathBuf>,
    pub netns: Option<String>,
    pub shutdown_grace_secs: Option<u64>,
    pub admin_listen: Option<SocketAddrV4>,
}

/// An interface name Linux accepts (IFNAMSIZ - 1 bytes, no '/' or whitespace); also what
/// keeps `/run/xgate/<iface>.*` and the pin directory inside their folders.
pub fn valid_iface(name: &str) -> bool {
    !name.is_empty()
        && name.len() < 16
        && name != "."
        && name != ".."
        && !name
            .bytes()
            .any(|b| b == b'/' || b.is_ascii_whitespace() || b == 0)
}

/// `value` must lie in `range`.
fn in_range<T: PartialOrd + std::fmt::Display>(
    key: &str,
    value: T,
    range: std::ops::RangeInclusive<T>,
) -> Result<T, ConfigError> {
    if range.contains(&value) {
        Ok(value)
    } else {
        Err(invalid(
            key,
            format!(
                "{value} is out of range ({}..={})",
                range.start(),
                range.end()
            ),
        ))
    }
}

fn power_of_two(key: &str, value: u64, min: u64, max: u64) -> Result<(), ConfigError> {
    if value.is_power_of_two() && (min..=max).contains(&value) {
        Ok(())
    } else {
        Err(invalid(
            key,
            format!("{value} must be a power of two from {min} to {max}"),
        ))
    }
}

/// The checked configuration: defaults, then `file`, then `over`.
pub fn build(file: &ConfigFile, over: &Overrides) -> Result<RunConfig, ConfigError> {
    let iface = over
        .interface
        .clone()
        .or_else(|| file.interface.clone())
        .ok_or_else(|| {
            invalid(
                "interface",
                "missing: set `interface` in the file or pass --iface",
            )
        })?;
    if !valid_iface(&iface) {
        return Err(invalid(
            "interface",
            format!(
                "{iface:?} is not a valid interface name (1 to 15 bytes, no '/' or whitespace)"
            ),
        ));
    }

    let ports = served_ports(file, over)?;
    let mut gw = BypassConfig::new(iface, ports);
    if let Some(a) = over.listen_addr.or(file.listen_addr) {
        gw.listen_addr = a;
    }
    if let Some(b) = over.backlog.or(file.backlog) {
        let key = if over.backlog.is_some() {
            "--backlog"
        } else {
            "backlog"
        };
        gw.backlog = in_range(key, b, 1..=i32::MAX as u32)?;
    }
    bypass_section(&mut gw, &file.bypass, over)?;
    tcp_section(&mut gw, &file.tcp)?;
    http_section(&mut gw, &file.http)?;
    app_section(&mut gw, &file.app)?;
    // Placement is decided at run time (the default cgroup may have to be created first).
    gw.cgroup = CgroupPlacement::Current;

    let mut kernel = KernelConfig {
        http: gw.engine.http,
        ..KernelConfig::default()
    };
    kernel_section(&mut kernel, &file.kernel_path)?;

    let netns = over.netns.clone().or_else(|| file.netns.clone());
    if let Some(n) = &netns {
        if n.is_empty() || n.contains('/') || n == "." || n == ".." {
            return Err(invalid(
                "netns",
                format!("{n:?} is not a namespace name under /var/run/netns"),
            ));
        }
    }
    let grace = over
        .shutdown_grace_secs
        .or(file.shutdown_grace_secs)
        .unwrap_or(5);
    let grace = in_range("shutdown_grace_secs", grace, 0..=3600)?;
    let admin_listen = over.admin_listen.or(file.admin.listen);
    if let Some(a) = admin_listen {
        let key = if over.admin_listen.is_some() {
            "--admin-listen"
        } else {
            "admin.listen"
        };
        if a.port() == 0 {
            return Err(invalid(key, "port 0: give the port Prometheus will scrape"));
        }
        if gw.ports.iter().any(|p| p.port == a.port()) {
            return Err(invalid(
                key,
                format!(
                    "port {} is a served port; the admin endpoint needs its own",
                    a.port()
                ),
            ));
        }
    }
    let mut log = LogConfig::default();
    if let Some(level) = &file.log.level {
        crate::logging::valid_filter(level).map_err(|e| invalid("log.level", e))?;
        log.filter = level.clone();
    }
    if let Some(f) = file.log.format {
        log.format = match f {
            LogFormatKey::Text => LogFormat::Text,
            LogFormatKey::Json => LogFormat::Json,
        };
    }
    Ok(RunConfig {
        gateway: gw,
        kernel,
        kernel_drive: KernelDrive::Thread {
            core: over.kernel_core.or(file.kernel_path.core),
        },
        cgroup: over.cgroup.clone().or_else(|| file.cgroup.clone()),
        netns,
        shutdown_grace: Duration::from_secs(grace),
        admin_listen,
        log,
    })
}

fn served_ports(file: &ConfigFile, over: &Overrides) -> Result<Vec<PortConfig>, ConfigError> {
    let ports: Vec<PortConfig> = if over.ports.is_empty() {
        if !over.bypass.is_empty() {
            // --bypass alone selects among the file's ports.
            for &b in &over.bypass {
                if !file.ports.iter().any(|p| p.port == b) {
                    return Err(invalid(
                        "--bypass",
                        format!("{b} is not one of the served ports"),
                    ));
                }
            }
        }
        file.ports
            .iter()
            .map(|p| PortConfig {
                port: p.port,
                bypass: if over.bypass.is_empty() {
                    p.bypass
                } else {
                    over.bypass.contains(&p.port)
                },
            })
            .collect()
    } else {
        if let Some(&b) = over.bypass.iter().find(|b| !over.ports.contains(b)) {
            return Err(invalid(
                "--bypass",
                format!("{b} is not one of the served ports (--port)"),
            ));
        }
        over.ports
            .iter()
            .map(|&port| PortConfig {
                port,
                bypass: over.bypass.contains(&port),
            })
            .collect()
    };
    let from_cli = !over.ports.is_empty();
    if ports.is_empty() {
        return Err(invalid(
            "ports",
            "no port to serve: add [[ports]] to the file or pass --port",
        ));
    }
    for (i, p) in ports.iter().enumerate() {
        let key = if from_cli {
            "--port".to_string()
        } else {
            format!("ports[{i}].port")
        };
        if p.port == 0 {
            return Err(invalid(key, "0 is not a port"));
        }
        if ports[..i].iter().any(|q| q.port == p.port) {
            return Err(invalid(key, format!("{} is given twice", p.port)));
        }
    }
    Ok(ports)
}

fn bypass_section(
    gw: &mut BypassConfig,
    s: &BypassSection,
    over: &Overrides,
) -> Result<(), ConfigError> {
    if let Some(q) = over.queues.or(s.queues) {
        gw.queues = Some(in_range("bypass.queues", q, 1..=1024)?);
    }
    gw.cores = if over.cores.is_empty() {
        s.cores.clone().unwrap_or_default()
    } else {
        over.cores.clone()
    };
    let cpus = libc::CPU_SETSIZE as usize;
    if let Some(c) = gw.cores.iter().find(|&&c| c >= cpus) {
        return Err(invalid(
            "bypass.cores",
            format!("CPU {c} is beyond {}", cpus - 1),
        ));
    }
    if let Some(m) = over.xdp_mode.or(s.xdp_mode.map(Into::into)) {
        gw.xdp_mode = m;
    }
    if let Some(m) = over.bind_mode.or(s.bind_mode.map(Into::into)) {
        gw.xsk.bind_mode = m;
    }
    if let Some(w) = s.need_wakeup {
        gw.xsk.wakeup = w.into();
    }
    if let Some(f) = s.frame_size {
        if f != 2048 && f != 4096 {
            return Err(invalid(
                "bypass.frame_size",
                format!("{f} must be 2048 or 4096"),
            ));
        }
        gw.xsk.frame_size = f;
    }
    if let Some(r) = s.ring_size {
        power_of_two("bypass.ring_size", r.into(), 64, 32768)?;
        gw.xsk.ring_size = r;
    }
    if let Some(n) = s.frame_count {
        gw.xsk.frame_count = n;
    }
    if gw.xsk.frame_count < 2 * gw.xsk.ring_size || gw.xsk.frame_count > 1 << 20 {
        return Err(invalid(
            "bypass.frame_count",
            format!(
                "{} must be at least twice bypass.ring_size ({}) and at most {}",
                gw.xsk.frame_count,
                gw.xsk.ring_size,
                1 << 20
            ),
        ));
    }
    if let Some(b) = s.batch_size {
        gw.poller.batch_size = in_range("bypass.batch_size", b, 1..=gw.xsk.ring_size as usize)?;
    }
    if let Some(us) = s.idle_spin_us {
        gw.poller.idle_spin =
            Duration::from_micros(in_range("bypass.idle_spin_us", us, 0..=1_000_000)?);
    }
    if let Some(m) = s.max_user_flows {
        gw.max_user_flows = in_range("bypass.max_user_flows", m, 1..=1 << 24)?;
    }
    Ok(())
}

fn kernel_section(k: &mut KernelConfig, s: &KernelPathSection) -> Result<(), ConfigError> {
    if let Some(n) = s.max_connections {
        k.max_connections = in_range("kernel_path.max_connections", n, 1..=1 << 20)?;
    }
    if let Some(n) = s.ring_entries {
        power_of_two("kernel_path.ring_entries", n.into(), 8, 32768)?;
        k.ring_entries = n;
    }
    if let Some(n) = s.recv_buffers {
        power_of_two("kernel_path.recv_buffers", n.into(), 1, 32768)?;
        k.recv_buffers = n;
    }
    if let Some(n) = s.recv_buffer_len {
        k.recv_buffer_len = in_range("kernel_path.recv_buffer_len", n, 512..=1 << 24)?;
    }
    if let Some(n) = s.output_buffer_len {
        k.output_buffer_len = in_range("kernel_path.output_buffer_len", n, 1024..=1 << 24)?;
    }
    if let Some(ms) = s.linger_ms {
        k.linger = Duration::from_millis(in_range("kernel_path.linger_ms", ms, 0..=60_000)?);
    }
    Ok(())
}

fn tcp_section(gw: &mut BypassConfig, s: &TcpSection) -> Result<(), ConfigError> {
    let t = &mut gw.engine.tcp;
    let ms = |key: &str, v: u64, range| in_range(key, v, range).map(Duration::from_millis);
    let secs = |key: &str, v: u64, range| in_range(key, v, range).map(Duration::from_secs);
    if let Some(n) = s.max_connections {
        t.max_connections = in_range("tcp.max_connections", n, 1..=1 << 20)?;
    }
    if let Some(n) = s.mss {
        t.mss = n;
    }
    // A full segment with the largest headers we send (Ethernet + IPv4 + TCP with options)
    // must fit in one UMEM frame.
    let max_mss = (gw.xsk.frame_size - 14 - 20 - 60).min(9000) as u16;
    in_range("tcp.mss", t.mss, 536..=max_mss).map_err(|e| match e {
        ConfigError::Invalid { key, problem } => invalid(
            key,
            format!("{problem} with frames of {} bytes", gw.xsk.frame_size),
        ),
        e => e,
    })?;
    if let Some(n) = s.rx_buffer {
        t.rx_buffer = in_range("tcp.rx_buffer", n, 4096..=1 << 30)?;
    }
    if let Some(n) = s.tx_buffer {
        t.tx_buffer = in_range("tcp.tx_buffer", n, 4096..=1 << 30)?;
    }
    if let Some(n) = s.max_ooo_bytes {
        t.max_ooo_bytes = in_range("tcp.max_ooo_bytes", n, 0..=1 << 30)?;
    }
    if let Some(n) = s.window_scale {
        t.window_scale = in_range("tcp.window_scale", n, 0..=14)?;
    }
    if let Some(v) = s.initial_rto_ms {
        t.initial_rto = ms("tcp.initial_rto_ms", v, 10..=60_000)?;
    }
    if let Some(v) = s.min_rto_ms {
        t.min_rto = ms("tcp.min_rto_ms", v, 1..=60_000)?;
    }
    if let Some(v) = s.max_rto_ms {
        t.max_rto = ms("tcp.max_rto_ms", v, 1..=600_000)?;
    }
    if t.min_rto > t.max_rto {
        return Err(invalid("tcp.min_rto_ms", "must not exceed tcp.max_rto_ms"));
    }
    if let Some(n) = s.max_retransmissions {
        t.max_retransmissions = in_range("tcp.max_retransmissions", n, 1..=32)?;
    }
    if let Some(v) = s.delayed_ack_ms {
        // RFC 9293 §3.8.6.3: the delay MUST be less than 0.5 s.
        t.delayed_ack = ms("tcp.delayed_ack_ms", v, 1..=499)?;
    }
    if let Some(v) = s.time_wait_secs {
        t.time_wait = secs("tcp.time_wait_secs", v, 1..=240)?;
    }
    if let Some(n) = s.max_time_wait {
        t.max_time_wait = in_range("tcp.max_time_wait", n, 1..=1 << 22)?;
    }
    if let Some(v) = s.fin_wait_2_timeout_secs {
        t.fin_wait_2_timeout = secs("tcp.fin_wait_2_timeout_secs", v, 1..=3600)?;
    }
    if let Some(v) = s.idle_timeout_secs {
        t.idle_timeout = secs("tcp.idle_timeout_secs", v, 1..=86_400)?;
    }
    if let Some(n) = s.challenge_ack_limit {
        t.challenge_ack_limit = in_range("tcp.challenge_ack_limit", n, 1..=1_000_000)?;
    }
    if let Some(n) = s.syn_hints {
        t.syn_hints = in_range("tcp.syn_hints", n, 0..=1 << 22)?;
    }
    Ok(())
}

fn http_section(gw: &mut BypassConfig, s: &HttpSection) -> Result<(), ConfigError> {
    let h = &mut gw.engine.http;
    if let Some(n) = s.max_header_bytes {
        h.max_header_bytes = in_range("http.max_header_bytes", n, 256..=1 << 20)?;
    }
    if let Some(n) = s.max_headers {
        h.max_headers = in_range("http.max_headers", n, 1..=128)?;
    }
    if let Some(n) = s.max_uri_len {
        h.max_uri_len = in_range("http.max_uri_len", n, 16..=h.max_header_bytes)?;
    }
    if let Some(n) = s.max_body_len {
        h.max_body_len = in_range("http.max_body_len", n, 0..=1 << 40)?;
    }
    if let Some(v) = s.header_timeout_secs {
        h.header_timeout = Duration::from_secs(in_range("http.header_timeout_secs", v, 1..=3600)?);
    }
    if let Some(v) = s.idle_timeout_secs {
        h.idle_timeout = Duration::from_secs(in_range("http.idle_timeout_secs", v, 1..=86_400)?);
    }
    Ok(())
}

fn app_section(gw: &mut BypassConfig, s: &AppSection) -> Result<(), ConfigError> {
    let mut app = AppConfig::default();
    if let Some(b) = s.builtin_routes {
        app.builtin_routes = b;
    }
    if let Some(n) = s.max_bytes_len {
        app.max_bytes_len = in_range("app.max_bytes_len", n, 0..=1 << 30)?;
    }
    app.routes = s
        .routes
        .iter()
        .map(|r| RouteConfig {
            method: r.method.clone(),
            path: r.path.clone(),
            status: r.status,
            headers: r
                .headers
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
            body: r.body.clone().into_bytes(),
        })
        .collect();
    let mut limits = StaticLimits::default();
    if let Some(n) = s.static_max_bytes {
        limits.max_bytes = in_range("app.static_max_bytes", n, 0..=1 << 36)?;
    }
    if let Some(n) = s.static_max_files {
        limits.max_files = in_range("app.static_max_files", n, 0..=1 << 20)?;
    }
    if let Some(dir) = &s.static_dir {
        if !dir.is_absolute() {
            return Err(invalid(
                "app.static_dir",
                format!("{dir:?} must be an absolute path"),
            ));
        }
        let prefix = s.static_prefix.as_deref().unwrap_or("/");
        app.files = StaticFiles::load(dir, prefix, &limits).map_err(|e| {
            let key = match e {
                StaticError::BadPrefix { .. } => "app.static_prefix",
                StaticError::TooManyFiles { .. } => "app.static_max_files",
                StaticError::TooManyBytes { .. } => "app.static_max_bytes",
                _ => "app.static_dir",
            };
            invalid(key, e.to_string())
        })?;
    }
    // The app's own checks (methods, paths, statuses, headers), named by route.
    App::new(&app).map_err(|e| invalid("app.routes", e.to_string()))?;
    gw.app = app;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> ConfigFile {
        ConfigFile::parse(text).unwrap()
    }

    fn problem(file: &str, over: &Overrides) -> String {
        build(&parse(file), over).unwrap_err().to_string()
    }

    const FULL: &str = r#"
interface = "eth1"
listen_addr = "10.0.0.1"
backlog = 512
shutdown_grace_secs = 9

[[ports]]
port = 80

[[ports]]
port = 8080
bypass = true

[bypass]
queues = 2
cores = [1, 3]
xdp_mode = "generic"
bind_mode = "copy"
need_wakeup = "off"
frame_count = 8192
ring_size = 1024
batch_size = 32
idle_spin_us = 50

[kernel_path]
core = 0
max_connections = 100
linger_ms = 500

[tcp]
max_connections = 1000
mss = 1400
idle_timeout_secs = 30
delayed_ack_ms = 20

[http]
max_header_bytes = 8192
header_timeout_secs = 3
idle_timeout_secs = 15

[app]
builtin_routes = false

[[app.routes]]
path = "/hello"
headers = { "Content-Type" = "text/plain" }
body = "hi\n"
"#;

    #[test]
    fn a_full_file_fills_every_setting() {
        let c = build(&parse(FULL), &Overrides::default()).unwrap();
        let g = &c.gateway;
        assert_eq!(g.ifname, "eth1");
        assert_eq!(g.xsk.ifname, "eth1");
        assert_eq!(g.listen_addr, Ipv4Addr::new(10, 0, 0, 1));
        assert_eq!(g.backlog, 512);
        assert_eq!(
            g.ports,
            vec![
                PortConfig {
                    port: 80,
                    bypass: false
                },
                PortConfig {
                    port: 8080,
                    bypass: true
                }
            ]
        );
        assert_eq!((g.queues, g.cores.clone()), (Some(2), vec![1, 3]));
        assert_eq!(g.xdp_mode, XdpMode::Generic);
        assert_eq!(g.xsk.bind_mode, BindMode::Copy);
        assert_eq!(g.xsk.wakeup, Wakeup::Off);
        assert_eq!((g.xsk.frame_count, g.xsk.ring_size), (8192, 1024));
        assert_eq!(g.poller.batch_size, 32);
        assert_eq!(g.poller.idle_spin, Duration::from_micros(50));
        assert_eq!(g.engine.tcp.max_connections, 1000);
        assert_eq!(g.engine.tcp.mss, 1400);
        assert_eq!(g.engine.tcp.idle_timeout, Duration::from_secs(30));
        assert_eq!(g.engine.tcp.delayed_ack, Duration::from_millis(20));
        assert_eq!(g.engine.http.max_header_bytes, 8192);
        assert_eq!(g.engine.http.header_timeout, Duration::from_secs(3));
        // Both paths answer within the same HTTP limits.
        assert_eq!(c.kernel.http, g.engine.http);
        assert_eq!(c.kernel.max_connections, 100);
        assert_eq!(c.kernel.linger, Duration::from_millis(500));
        assert_eq!(c.kernel_drive, KernelDrive::Thread { core: Some(0) });
        assert!(!g.app.builtin_routes);
        assert_eq!(g.app.routes.len(), 1);
        assert_eq!(g.app.routes[0].method, "GET");
        assert_eq!(g.app.routes[0].body, b"hi\n");
        assert_eq!(
            g.app.routes[0].headers,
            vec![("Content-Type".into(), "text/plain".into())]
        );
        assert_eq!(c.shutdown_grace, Duration::from_secs(9));
    }

    #[test]
    fn an_empty_file_with_flags_gives_the_defaults() {
        let over = Overrides {
            interface: Some("eth0".into()),
            ports: vec![80],
            ..Overrides::default()
        };
        let c = build(&ConfigFile::default(), &over).unwrap();
        let d = BypassConfig::new("eth0", []);
        assert_eq!(c.gateway.backlog, d.backlog);
        assert_eq!(c.gateway.engine.tcp, d.engine.tcp);
        assert_eq!(c.gateway.engine.http, d.engine.http);
        assert_eq!(c.gateway.xsk.ring_size, d.xsk.ring_size);
        assert_eq!(
            c.kernel.max_connections,
            KernelConfig::default().max_connections
        );
        assert_eq!(c.shutdown_grace, Duration::from_secs(5));
        assert_eq!(
            c.gateway.ports,
            vec![PortConfig {
                port: 80,
                bypass: false
            }]
        );
    }

    #[test]
    fn admin_listen_is_read_overridden_and_checked() {
        let base = "interface = \"eth1\"\n[[ports]]\nport = 80\n";
        let c = build(&parse(base), &Overrides::default()).unwrap();
        assert_eq!(c.admin_listen, None, "no endpoint unless asked");
        let file = format!("{base}[admin]\nlisten = \"127.0.0.1:9180\"\n");
        let c = build(&parse(&file), &Overrides::default()).unwrap();
        assert_eq!(c.admin_listen, Some("127.0.0.1:9180".parse().unwrap()));
        let over = Overrides {
            admin_listen: Some("10.0.0.1:9999".parse().unwrap()),
            ..Overrides::default()
        };
        assert_eq!(
            build(&parse(&file), &over).unwrap().admin_listen,
            Some("10.0.0.1:9999".parse().unwrap())
        );
        let clash = format!("{base}[admin]\nlisten = \"0.0.0.0:80\"\n");
        assert!(problem(&clash, &Overrides::default())
            .starts_with("admin.listen: port 80 is a served port"));
        let zero = format!("{base}[admin]\nlisten = \"0.0.0.0:0\"\n");
        assert!(problem(&zero, &Overrides::default()).starts_with("admin.listen: port 0"));
        assert!(ConfigFile::parse(&format!("{base}[admin]\nlisten = \"nowhere\"\n")).is_err());
    }

    #[test]
    fn flags_override_the_file() {
        let over = Overrides {
            interface: Some("eth9".into()),
            cores: vec![0],
            backlog: Some(64),
            xdp_mode: Some(XdpMode::Native),
            kernel_core: Some(1),
            ..Overrides::default()
        };
        let c = build(&parse(FULL), &over).unwrap();
        assert_eq!(c.gateway.ifname, "eth9");
        assert_eq!(c.gateway.xsk.ifname, "eth9");
        assert_eq!(c.gateway.cores, vec![0]);
        assert_eq!(c.gateway.backlog, 64);
        assert_eq!(c.gateway.xdp_mode, XdpMode::Native);
        assert_eq!(c.kernel_drive, KernelDrive::Thread { core: Some(1) });
        // --port replaces the file's ports; --bypass alone picks among the file's.
        let over = Overrides {
            ports: vec![9000],
            ..Overrides::default()
        };
        let c = build(&parse(FULL), &over).unwrap();
        assert_eq!(
            c.gateway.ports,
            vec![PortConfig {
                port: 9000,
                bypass: false
            }]
        );
        let over = Overrides {
            bypass: vec![80],
            ..Overrides::default()
        };
        let c = build(&parse(FULL), &over).unwrap();
        let bypassed: Vec<u16> = c
            .gateway
            .ports
            .iter()
            .filter(|p| p.bypass)
            .map(|p| p.port)
            .collect();
        assert_eq!(bypassed, vec![80]);
    }

    #[test]
    fn errors_name_the_key_and_the_problem() {
        let none = Overrides::default();
        let cases: &[(&str, &str)] = &[
            ("[[ports]]\nport = 80\n", "interface: missing"),
            ("interface = \"e\"\n", "ports: no port to serve"),
            (
                "interface = \"a/b\"\n[[ports]]\nport = 1\n",
                "interface: \"a/b\" is not a valid",
            ),
            (
                "interface = \"e\"\n[[ports]]\nport = 0\n",
                "ports[0].port: 0 is not a port",
            ),
            (
                "interface = \"e\"\n[[ports]]\nport = 80\n[[ports]]\nport = 80\n",
                "ports[1].port: 80 is given twice",
            ),
            (
                "interface = \"e\"\n[[ports]]\nport = 80\n[tcp]\nmss = 100\n",
                "tcp.mss: 100 is out of range (536..=1954) with frames of 2048 bytes",
            ),
            (
                "interface = \"e\"\n[[ports]]\nport = 80\n[bypass]\nring_size = 1000\n",
                "bypass.ring_size: 1000 must be a power of two",
            ),
            (
                "interface = \"e\"\n[[ports]]\nport = 80\n[bypass]\nframe_size = 3000\n",
                "bypass.frame_size: 3000 must be 2048 or 4096",
            ),
            (
                "interface = \"e\"\n[[ports]]\nport = 80\n[tcp]\ndelayed_ack_ms = 500\n",
                "tcp.delayed_ack_ms: 500 is out of range (1..=499)",
            ),
            (
                "interface = \"e\"\n[[ports]]\nport = 80\n[http]\nmax_headers = 500\n",
                "http.max_headers: 500 is out of range",
            ),
            (
                "interface = \"e\"\n[[ports]]\nport = 80\n[[app.routes]]\npath = \"nope\"\n",
                "app.routes: route 0: path \"nope\" must start with '/'",
            ),
            (
                "interface = \"e\"\n[[ports]]\nport = 80\n[kernel_path]\nrecv_buffers = 3\n",
                "kernel_path.recv_buffers: 3 must be a power of two",
            ),
        ];
        for (file, want) in cases {
            let got = problem(file, &none);
            assert!(
                got.starts_with(want),
                "{file:?}: {got:?} does not start with {want:?}"
            );
        }
        let over = Overrides {
            bypass: vec![81],
            ..Overrides::default()
        };
        assert!(problem("interface = \"e\"\n[[ports]]\nport = 80\n", &over)
            .starts_with("--bypass: 81 is not one of the served ports"));
    }

    #[test]
    fn unknown_keys_and_wrong_types_are_refused_by_the_parser() {
        let e = ConfigFile::parse("interface = \"e\"\n[tcp]\nmsss = 1400\n").unwrap_err();
        assert!(e.contains("msss") && e.contains("unknown field"), "{e}");
        let e = ConfigFile::parse("backlog = \"big\"\n").unwrap_err();
        assert!(e.contains("backlog"), "{e}");
        let e = ConfigFile::parse("[bypass]\nxdp_mode = \"fast\"\n").unwrap_err();
        assert!(e.contains("fast") && e.contains("native"), "{e}");
        let e = ConfigFile::parse("[[ports]]\nport = 70000\n").unwrap_err();
        assert!(e.contains("port"), "{e}");
    }

    /// A fresh directory of `files` under the system's temporary directory.
    fn www(name: &str, files: &[(&str, &str)]) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("xgate-config-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        for (rel, body) in files {
            let path = dir.join(rel);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, body).unwrap();
        }
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn static_dir_is_read_into_routes_under_the_prefix() {
        let dir = www(
            "static",
            &[("index.html", "<p>hi</p>"), ("css/a.css", "a{}")],
        );
        let file = format!(
            "interface = \"e\"\n[[ports]]\nport = 80\n[app]\nstatic_dir = '{}'\nstatic_prefix = \"/s\"\n",
            dir.display()
        );
        let c = build(&parse(&file), &Overrides::default()).unwrap();
        let files = &c.gateway.app.files;
        assert_eq!((files.files(), files.bytes()), (2, 12));
        let paths: Vec<&[u8]> = files.paths().collect();
        assert_eq!(
            paths,
            [&b"/s"[..], b"/s/", b"/s/css/a.css", b"/s/index.html"]
        );
        // Without a directory there are no files, whatever the bounds say.
        let c = build(
            &parse("interface = \"e\"\n[[ports]]\nport = 80\n[app]\nstatic_max_files = 0\n"),
            &Overrides::default(),
        )
        .unwrap();
        assert_eq!(c.gateway.app.files.files(), 0);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn static_dir_errors_name_the_key_and_the_file() {
        let dir = www("static-errors", &[("a.txt", "12345"), ("b|c", "x")]);
        let base = |extra: &str| {
            format!(
                "interface = \"e\"\n[[ports]]\nport = 80\n[app]\nstatic_dir = '{}'\n{extra}",
                dir.display()
            )
        };
        let none = Overrides::default();
        let bad_name = problem(&base(""), &none);
        assert!(
            bad_name.starts_with(&format!(
                "app.static_dir: {}: the name has one of",
                dir.join("b|c").display()
            )),
            "{bad_name}"
        );
        std::fs::remove_file(dir.join("b|c")).unwrap();
        let cases = [
            (
                "static_max_bytes = 4\n",
                format!(
                    "app.static_max_bytes: {}: the files add up to more than 4 bytes",
                    dir.join("a.txt").display()
                ),
            ),
            (
                "static_max_files = 0\n",
                format!(
                    "app.static_max_files: {}: more than 0 files",
                    dir.join("a.txt").display()
                ),
            ),
            (
                "static_prefix = \"x\"\n",
                "app.static_prefix: \"x\" must start with '/'".to_string(),
            ),
            (
                "static_max_files = 2000000\n",
                "app.static_max_files: 2000000 is out of range".to_string(),
            ),
        ];
        for (extra, want) in cases {
            let got = problem(&base(extra), &none);
            assert!(
                got.starts_with(&want),
                "{got:?} does not start with {want:?}"
            );
        }
        assert!(build(&parse(&base("static_max_bytes = 5\n")), &none).is_ok());
        let missing = dir.join("missing");
        let file = format!(
            "interface = \"e\"\n[[ports]]\nport = 80\n[app]\nstatic_dir = '{}'\n",
            missing.display()
        );
        assert!(
            problem(&file, &none).starts_with(&format!("app.static_dir: {}: ", missing.display()))
        );
        let relative = "interface = \"e\"\n[[ports]]\nport = 80\n[app]\nstatic_dir = \"www\"\n";
        assert_eq!(
            problem(relative, &none),
            "app.static_dir: \"www\" must be an absolute path"
        );
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn the_shipped_example_is_valid() {
        let text = include_str!("../../docs/xgate.example.toml");
        let c = build(&parse(text), &Overrides::default()).unwrap();
        assert!(!c.gateway.ports.is_empty());
    }
}

#[cfg(test)]
mod reload_tests {
    use super::*;

    const START: &str = "interface = \"eth1\"\n[[ports]]\nport = 80\n[http]\nheader_timeout_secs = 3\n[[app.routes]]\npath = \"/v\"\nbody = \"one\"\n";

    /// A reloader of a file in a fresh temporary directory, started from `START`.
    fn reloader(name: &str) -> (Reloader, PathBuf) {
        let dir = std::env::temp_dir().join(format!("xgate-reload-{}-{name}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("xgate.toml");
        std::fs::write(&path, START).unwrap();
        let loaded = ConfigFile::load(&path).unwrap();
        (
            Reloader::new(Some(path.clone()), Overrides::default(), loaded),
            path,
        )
    }

    #[test]
    fn routes_and_http_limits_reload() {
        let (mut r, path) = reloader("ok");
        std::fs::write(&path, START.replace("one", "two").replace("= 3", "= 7")).unwrap();
        let next = r.reread().unwrap();
        assert_eq!(next.app.routes[0].body, b"two");
        assert_eq!(next.http.header_timeout, Duration::from_secs(7));
        let _ = std::fs::remove_dir_all(path.parent().unwrap());
    }

    #[test]
    fn restart_only_keys_are_refused_and_named_and_the_old_file_stays_the_reference() {
        let (mut r, path) = reloader("restart");
        let changed = START.replace("port = 80", "port = 81") + "[tcp]\nmss = 1400\n";
        std::fs::write(&path, changed).unwrap();
        let e = r.reread().unwrap_err().to_string();
        assert!(e.starts_with("[[ports]], [tcp]: changed"), "{e}");
        // Put back: a routes change alone is accepted again.
        std::fs::write(&path, START.replace("one", "three")).unwrap();
        assert_eq!(r.reread().unwrap().app.routes[0].body, b"three");
        let _ = std::fs::remove_dir_all(path.parent().unwrap());
    }

    #[test]
    fn an_invalid_file_is_refused_with_the_key() {
        let (mut r, path) = reloader("invalid");
        std::fs::write(&path, START.replace("= 3", "= 0")).unwrap();
        let e = r.reread().unwrap_err().to_string();
        assert!(e.contains("http.header_timeout_secs"), "{e}");
        std::fs::write(&path, START.replace("[http]", "[htp]")).unwrap();
        assert!(matches!(r.reread(), Err(ConfigError::Parse { .. })));
        std::fs::remove_file(&path).unwrap();
        assert!(matches!(r.reread(), Err(ConfigError::Read { .. })));
        let _ = std::fs::remove_dir_all(path.parent().unwrap());
    }

    #[test]
    fn a_reload_reads_the_static_files_again() {
        let (mut r, path) = reloader("static");
        let www = path.parent().unwrap().join("www");
        std::fs::create_dir_all(www.join("css")).unwrap();
        std::fs::write(www.join("css/a.css"), "one").unwrap();
        let with_dir = START.replace(
            "[[app.routes]]",
            &format!("[app]\nstatic_dir = '{}'\n[[app.routes]]", www.display()),
        );
        std::fs::write(&path, &with_dir).unwrap();
        let body = |next: &ReloadConfig, at: &[u8]| {
            let app = App::new(&next.app).unwrap();
            match app.handle(b"GET", at) {
                crate::app::Handler::Static(id) => app.prepared(id).body().to_vec(),
                h => panic!("{h:?}"),
            }
        };
        let next = r.reread().unwrap();
        assert_eq!(body(&next, b"/css/a.css"), b"one");
        // Same configuration file, changed and added files: read again.
        std::fs::write(www.join("css/a.css"), "two").unwrap();
        std::fs::write(www.join("new.txt"), "new").unwrap();
        let next = r.reread().unwrap();
        assert_eq!(body(&next, b"/css/a.css"), b"two");
        assert_eq!(body(&next, b"/new.txt"), b"new");
        // A directory that no longer loads is refused, naming the key and the file.
        std::fs::write(www.join("bad|name"), "x").unwrap();
        let e = r.reread().unwrap_err().to_string();
        assert!(
            e.starts_with("app.static_dir: ") && e.contains("bad|name"),
            "{e}"
        );
        let _ = std::fs::remove_dir_all(path.parent().unwrap());
    }

    #[test]
    fn a_gateway_started_without_a_file_has_nothing_to_reload() {
        let mut r = Reloader::new(None, Overrides::default(), ConfigFile::default());
        let e = r.reread().unwrap_err().to_string();
        assert!(e.contains("without a configuration file"), "{e}");
    }
}
