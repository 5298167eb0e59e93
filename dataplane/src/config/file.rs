//! The configuration file's schema: one serde struct per section, every key optional (the
//! defaults are the library types' own), unknown keys refused by the parser.

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddrV4};
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::afxdp::{BindMode, Wakeup};
use crate::bpf::XdpMode;
use crate::tcp::CongestionAlgorithm;

use super::ConfigError;

/// The file's schema. See `docs/configuration.md`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConfigFile {
    /// Interface to serve.
    pub interface: Option<String>,
    /// Address the listeners bind to (`::`: both families; see `docs/configuration.md`).
    pub listen_addr: Option<IpAddr>,
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
    #[serde(default)]
    pub access_log: AccessLogSection,
    /// Upstream pools requests are forwarded to.
    #[serde(default)]
    pub upstream: Vec<UpstreamEntry>,
    /// Which requests go to a pool, a configured response or the gateway's own answers.
    #[serde(default)]
    pub route: Vec<ProxyRouteEntry>,
    /// The certificates and policies of the ports with `tls = true`.
    #[serde(default)]
    pub tls: TlsSection,
}

/// `[tls]`: what every port with `tls = true` serves.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsSection {
    /// `"1.2"` (TLS 1.2 and 1.3, the default) or `"1.3"` (TLS 1.3 only).
    pub min_version: Option<TlsVersionKey>,
    /// A server name with no certificate: `"default"` (the default certificate) or `"reject"`
    /// (the `unrecognized_name` alert).
    pub unknown_server_name: Option<UnknownServerNameKey>,
    pub handshake_timeout_ms: Option<u64>,
    /// Sessions remembered for clients without tickets (restart to change).
    pub session_cache: Option<usize>,
    /// Handshakes each serving thread starts per round of its loop (restart to change).
    pub handshakes_per_round: Option<u32>,
    #[serde(default)]
    pub certificate: Vec<CertificateEntry>,
}

/// `[[tls.certificate]]`: one chain and its key, and the names it serves.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CertificateEntry {
    /// PEM: the certificate, then its intermediates.
    pub cert: PathBuf,
    /// PEM: its private key (PKCS#8, PKCS#1 or SEC1).
    pub key: PathBuf,
    /// `example.com`, `*.example.com`: each must be covered by the certificate.
    #[serde(default)]
    pub server_names: Vec<String>,
    /// Served when the client names no server, or one without a certificate.
    #[serde(default)]
    pub default: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub enum TlsVersionKey {
    #[serde(rename = "1.2")]
    V12,
    #[serde(rename = "1.3")]
    V13,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum UnknownServerNameKey {
    Default,
    Reject,
}

/// `[access_log]`: one line per request, written off the serving threads.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AccessLogSection {
    /// The log file (appended to, created if missing); unset: no access log.
    pub path: Option<PathBuf>,
    /// `text` or `json`.
    pub format: Option<LogFormatKey>,
    /// Records each serving thread holds between two collections (every 100 ms); more are
    /// dropped and counted.
    pub buffer_records: Option<usize>,
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
    /// The address this port's listener binds to (default: the top-level `listen_addr`).
    #[serde(default)]
    pub listen_addr: Option<IpAddr>,
    /// Terminate TLS on this port (certificates in `[tls]`), on both paths.
    #[serde(default)]
    pub tls: bool,
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

/// `tcp.congestion`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum CongestionKey {
    Cubic,
    Newreno,
}

impl From<CongestionKey> for CongestionAlgorithm {
    fn from(k: CongestionKey) -> Self {
        match k {
            CongestionKey::Cubic => CongestionAlgorithm::Cubic,
            CongestionKey::Newreno => CongestionAlgorithm::NewReno,
        }
    }
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
    pub tx_buffer_max: Option<usize>,
    pub rx_buffer_max: Option<usize>,
    pub buffer_budget: Option<usize>,
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
    /// Congestion controller of new connections.
    pub congestion: Option<CongestionKey>,
    /// HyStart++ (RFC 9406) in each connection's first slow start.
    pub hystart: Option<bool>,
    /// ECN (RFC 3168) for clients that ask, when the SYN cache answers.
    pub ecn: Option<bool>,
    pub syn_cache: Option<usize>,
    pub syn_cache_rate: Option<u32>,
    pub syn_ack_retries: Option<u8>,
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

/// `[[upstream]]`: a pool of servers requests are forwarded to.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpstreamEntry {
    /// What `[[route]]`s call the pool: a token, unique.
    pub name: String,
    #[serde(default)]
    pub servers: Vec<ServerEntry>,
    pub policy: Option<PolicyKey>,
    /// `client_address` or `header:<Name>`; only with `policy = "hash"`.
    pub hash_key: Option<String>,
    /// Idle connections kept per serving thread and server.
    pub keepalive: Option<usize>,
    pub connect_timeout_ms: Option<u64>,
    pub send_timeout_secs: Option<u64>,
    pub read_timeout_secs: Option<u64>,
    pub idle_timeout_secs: Option<u64>,
    /// Failures within `fail_timeout_secs` that eject a server; 0 never ejects.
    pub max_fails: Option<u32>,
    pub fail_timeout_secs: Option<u64>,
    pub health_check: Option<HealthCheckEntry>,
}

/// `[[upstream]]`'s `servers = [{ address = "10.0.0.2:8080", weight = 1 }]`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerEntry {
    /// `IP:port` (`[v6]:port`); a host name is refused (no resolver on the serving threads).
    pub address: String,
    pub weight: Option<u32>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PolicyKey {
    RoundRobin,
    LeastOutstanding,
    Hash,
}

/// `[upstream.health_check]`: an active check of each server.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HealthCheckEntry {
    /// The target of the `GET` sent (origin-form).
    pub path: String,
    pub interval_ms: Option<u64>,
    pub expect_status: Option<u16>,
    pub timeout_ms: Option<u64>,
}

/// `[[route]]`: a `Host` and/or path prefix, and where the requests that match go.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProxyRouteEntry {
    pub host: Option<String>,
    pub path_prefix: Option<String>,
    /// The name of an `[[upstream]]`.
    pub upstream: Option<String>,
    pub respond: Option<RespondEntry>,
    /// `true`: answered by the gateway's own routes and static files.
    #[serde(rename = "static")]
    pub static_files: Option<bool>,
    pub strip_prefix: Option<String>,
    pub set_headers: Option<HeaderList>,
    pub remove_headers: Option<Vec<String>>,
    pub response_set_headers: Option<HeaderList>,
    pub response_remove_headers: Option<Vec<String>>,
    pub upstream_host: Option<String>,
    pub x_forwarded: Option<bool>,
    pub forwarded: Option<bool>,
    pub via: Option<String>,
}

/// `[[route]]`'s `respond = { status = 503, body = "..." }`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RespondEntry {
    #[serde(default = "default_status")]
    pub status: u16,
    #[serde(default)]
    pub body: String,
}

/// A TOML table of header names and values, kept in the file's order (a map would sort them,
/// and the order of `set_headers` and `response_set_headers` is the order the fields are sent
/// in).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HeaderList(pub Vec<(String, String)>);

impl<'de> Deserialize<'de> for HeaderList {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl<'de> serde::de::Visitor<'de> for Visitor {
            type Value = HeaderList;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a table of header names and string values")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> Result<HeaderList, A::Error> {
                let mut pairs = Vec::new();
                while let Some(pair) = map.next_entry::<String, String>()? {
                    pairs.push(pair);
                }
                Ok(HeaderList(pairs))
            }
        }
        d.deserialize_map(Visitor)
    }
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
