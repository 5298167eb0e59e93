//! The whole bypass path of one interface, set up and torn down as one value: [`Bypass`].
//!
//! It lives with the running process rather than in `afxdp/` because it assembles far more
//! than AF_XDP: the cgroup, the BPF steering, the kernel listeners and the poller threads.
//!
//! [`Bypass::start`], in the calling thread's network namespace:
//! 1. places the process in the gateway's cgroup v2 ([`CgroupPlacement`]);
//! 2. loads and attaches the steering programs ([`Steering::load`]: XDP on the interface,
//!    sock_ops on that cgroup, maps pinned, stale `user_flows` cleared);
//! 3. opens one AF_XDP socket per RX queue (in `xsks`), builds one [`Engine`] per queue (one
//!    random SYN-cookie secret for all) and spawns one [`Poller`] thread per queue, pinned to
//!    its configured core;
//! 4. creates the kernel listening socket of every port, *after* sock_ops is attached so that
//!    `listen()` tags the port, and checks the tag is there;
//! 5. sets each port's steering state (bypass on, or off = kernel path).
//!
//! Dropping the bypass (or [`Bypass::shutdown`] then drop) stops and joins the pollers (their
//! AF_XDP sockets leave `xsks`), closes the listeners that were not taken, detaches both
//! programs and removes the pins, and moves the process back to the cgroup it came from when
//! it had joined another. If the process dies instead, the kernel does the same (see
//! `bpf/README.md`): traffic falls back to the kernel.
//!
//! The listening sockets are the kernel path's: whoever serves it (the io_uring path) takes
//! them with [`Bypass::take_listener`]. They are what sock_ops tags, so a port is steered only
//! while its listener is open.

use std::io;
use std::net::{IpAddr, Ipv6Addr, SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;

use crate::answers::{ReloadMailbox, Served};
use crate::app::{App, AppConfig, AppError};
use crate::bpf::{
    PortState, Steering, SteeringConfig, SteeringError, SteeringMaps, XdpMode, PIN_ROOT,
};
use crate::engine::{Engine, EngineConfig};
use crate::http::{HttpLimits, HttpStats};
use crate::proxy::balance::HashKey;
use crate::proxy::config::ProxyConfig;
use crate::proxy::forwarder::UpstreamServerState;
use crate::proxy::health::HealthBoard;
use crate::sys::socket;
use crate::tls::{TlsPorts, TlsStats};
use crate::upstream::{UpstreamConnsConfig, UpstreamSideConfig};

use super::access_log::AccessLinks;
use super::cores::{self, CpuSet};
use super::placement::{self, process_cgroup, CgroupLookup};
use crate::tally::{self, PortCount};
use crate::tcp::TcpStats;

use crate::afxdp::{
    rx_queue_count, AfXdpError, Clock, PmtuInbox, PmtuRelay, Poller, PollerConfig, PollerCounters,
    PollerError, PollerStats, Waker, XskConfig, XskQueue,
};

/// Which cgroup v2 the gateway's sockets are created in (sock_ops is attached there, and only
/// listeners created inside it are tagged and steered).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CgroupPlacement {
    /// The cgroup the process is in now (from `/proc/self/cgroup`).
    Current,
    /// Move the whole process into this existing cgroup v2 directory first; it moves back to
    /// where it was when the gateway is dropped.
    Join(PathBuf),
}

/// A port the gateway serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PortConfig {
    /// TCP port.
    pub port: u16,
    /// Start on the bypass path (else on the kernel path).
    pub bypass: bool,
}

/// Everything [`Bypass::start`] needs.
#[derive(Debug, Clone)]
pub struct BypassConfig {
    /// Interface to steer.
    pub ifname: String,
    /// Where the gateway's sockets live.
    pub cgroup: CgroupPlacement,
    /// Served ports, each with its kernel listener.
    pub ports: Vec<PortConfig>,
    /// Address the kernel listeners bind to, and so the families a port serves on both paths
    /// (`socket::tcp_listener`): `::` both, an IPv4 address IPv4 alone, another IPv6 address
    /// IPv6 alone.
    pub listen_addr: IpAddr,
    /// Ports whose listener binds to another address than [`listen_addr`](Self::listen_addr).
    pub port_listen_addrs: Vec<(u16, IpAddr)>,
    /// `listen()` backlog of the kernel listeners.
    pub backlog: u32,
    /// XDP attach mode.
    pub xdp_mode: XdpMode,
    /// RX queues to serve; `None`: the interface's channel count.
    pub queues: Option<u32>,
    /// CPU of each queue's poller, by queue index; a queue without an entry is not pinned
    /// (but see [`pick_cores`](Self::pick_cores)).
    pub cores: Vec<usize>,
    /// When `cores` is empty, choose one CPU per queue (`gateway::cores`), avoiding this
    /// one if given (the kernel path's) and CPUs allow; `None`: leave the pollers unpinned.
    /// `xgate run` sets it; the library's default is `None`.
    pub pick_cores: Option<Option<usize>>,
    /// AF_XDP sizes and modes (its `ifname` is replaced by [`ifname`](Self::ifname)).
    pub xsk: XskConfig,
    /// Poller settings (its `core` is replaced by the entry of [`cores`](Self::cores)).
    pub poller: PollerConfig,
    /// TCP and HTTP bounds of each queue's engine.
    pub engine: EngineConfig,
    /// What the gateway answers.
    pub app: AppConfig,
    /// The proxy's pools and routes, shared by every poller's `App`; `None`: no `[[route]]`.
    pub proxy: Option<Arc<ProxyConfig>>,
    /// The TLS ports and their certificates, shared by every poller's `App`; `None`: no port
    /// speaks TLS.
    pub tls: Option<Arc<TlsPorts>>,
    /// Consistent hashing's key, the same on every poller (and the kernel path: see
    /// `gateway::run`).
    pub upstream_hash_key: HashKey,
    /// The active health checks' verdicts every poller follows.
    pub upstream_health: Option<Arc<HealthBoard>>,
    /// Capacity of `user_flows`; raised at start to at least queues × the engine's
    /// `tcp.max_connections`, so that every connection an engine accepts gets its entry.
    pub max_user_flows: u32,
    /// Where the maps are pinned (`<pin_root>/<ifname>/`).
    pub pin_root: PathBuf,
}

impl BypassConfig {
    /// The address `port`'s listener binds to: its own, else [`listen_addr`](Self::listen_addr).
    pub fn listen_addr_of(&self, port: u16) -> IpAddr {
        self.port_listen_addrs
            .iter()
            .find(|(p, _)| *p == port)
            .map_or(self.listen_addr, |&(_, a)| a)
    }

    /// Defaults for `ifname` and `ports`: the current cgroup, listeners on `::` (both families) with a
    /// backlog of 1024, XDP native with generic fallback, one queue per channel, no pinning,
    /// default AF_XDP, poller, engine and app settings.
    pub fn new(ifname: impl Into<String>, ports: impl IntoIterator<Item = PortConfig>) -> Self {
        let ifname = ifname.into();
        Self {
            xsk: XskConfig::new(ifname.clone()),
            ifname,
            cgroup: CgroupPlacement::Current,
            ports: ports.into_iter().collect(),
            listen_addr: IpAddr::V6(Ipv6Addr::UNSPECIFIED),
            port_listen_addrs: Vec::new(),
            backlog: 1024,
            xdp_mode: XdpMode::Auto,
            queues: None,
            cores: Vec::new(),
            pick_cores: None,
            poller: PollerConfig::default(),
            engine: EngineConfig::default(),
            app: AppConfig::default(),
            proxy: None,
            tls: None,
            upstream_hash_key: HashKey([0; 16]),
            upstream_health: None,
            max_user_flows: 262_144,
            pin_root: PathBuf::from(PIN_ROOT),
        }
    }
}

/// Why the gateway could not start or change.
#[derive(Debug, thiserror::Error)]
pub enum BypassError {
    /// The configuration is inconsistent.
    #[error("gateway configuration: {0}")]
    Config(String),
    /// Finding or joining the cgroup failed.
    #[error("{what} {path:?}: {source}")]
    Cgroup {
        /// What was being done.
        what: &'static str,
        /// Path involved.
        path: PathBuf,
        /// The OS error.
        source: io::Error,
    },
    /// Loading, attaching or a map operation failed.
    #[error(transparent)]
    Steering(#[from] SteeringError),
    /// The interface's RX queues could not be counted.
    #[error("counting the RX queues of {ifname:?}: {source}")]
    Queues {
        /// Interface.
        ifname: String,
        /// The OS error.
        source: io::Error,
    },
    /// An AF_XDP socket could not be set up.
    #[error(transparent)]
    AfXdp(#[from] AfXdpError),
    /// The app configuration is refused.
    #[error(transparent)]
    App(#[from] AppError),
    /// No randomness for the SYN-cookie secret.
    #[error("reading a random SYN-cookie secret: {0}")]
    Random(io::Error),
    /// A poller could not be built.
    #[error(transparent)]
    Poller(#[from] PollerError),
    /// The CPUs to choose the pollers' from could not be read.
    #[error("reading the CPUs the pollers may run on: {0}")]
    Cpus(io::Error),
    /// A poller thread could not be spawned.
    #[error("spawning a poller thread: {0}")]
    Spawn(io::Error),
    /// A kernel listener could not be created.
    #[error("kernel listener on port {port}: {what}: {source}")]
    Listen {
        /// Port.
        port: u16,
        /// The failing call.
        what: &'static str,
        /// The OS error.
        source: io::Error,
    },
    /// A listener was created but sock_ops did not tag it: the process is not inside the cgroup
    /// the program is attached to, so the port could never be steered.
    #[error("listener on port {port} was not tagged by sock_ops (is the process in {cgroup:?}?)")]
    NotTagged {
        /// Port.
        port: u16,
        /// The gateway's cgroup.
        cgroup: PathBuf,
    },
    /// The port is not one the gateway serves.
    #[error("port {0} is not served by this gateway")]
    UnknownPort(u16),
}

/// How one poller thread ended (see [`Bypass::shutdown`]).
#[derive(Debug)]
pub struct PollerExit {
    /// RX queue.
    pub queue: u32,
    /// The poller, with its engine, unless the thread panicked.
    pub poller: Option<Poller>,
    /// The error that stopped it early, if any.
    pub error: Option<PollerError>,
    /// The thread panicked.
    pub panicked: bool,
}

struct PollerHandle {
    queue: u32,
    /// The CPU the poller is pinned to, if any.
    core: Option<usize>,
    stats: Arc<PollerStats>,
    waker: Waker,
    drain: Arc<AtomicBool>,
    reload: Arc<ReloadMailbox>,
    thread: Option<JoinHandle<(Poller, Result<(), PollerError>)>>,
}

/// The running bypass path of one interface. See the module documentation.
pub struct Bypass {
    // Torn down explicitly in `Drop`, in this order.
    pollers: Vec<PollerHandle>,
    stop: Arc<AtomicBool>,
    listeners: Vec<(u16, Option<TcpListener>)>,
    steering: Option<Steering>,
    /// Where the process was before joining the gateway's cgroup.
    restore_cgroup: Option<PathBuf>,
    cgroup: PathBuf,
    ports: Vec<u16>,
}

impl std::fmt::Debug for Bypass {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Bypass")
            .field("steering", &self.steering)
            .field("queues", &self.pollers.len())
            .field("ports", &self.ports)
            .field("cgroup", &self.cgroup)
            .finish_non_exhaustive()
    }
}

impl Bypass {
    /// Sets up the bypass path (see the module documentation). On error, whatever was already
    /// set up is torn down again.
    pub fn start(config: &BypassConfig) -> Result<Self, BypassError> {
        Self::start_logged(config, None)
    }

    /// [`start`](Self::start), each poller handing its access-log records (`capacity` between
    /// two hand-overs) to a link made in `access`.
    pub fn start_logged(
        config: &BypassConfig,
        mut access: Option<(&mut AccessLinks, usize)>,
    ) -> Result<Self, BypassError> {
        validate(config)?;
        let mut gw = Bypass {
            pollers: Vec::new(),
            stop: Arc::new(AtomicBool::new(false)),
            listeners: Vec::new(),
            steering: None,
            restore_cgroup: None,
            cgroup: PathBuf::new(),
            ports: config.ports.iter().map(|p| p.port).collect(),
        };

        // 1. cgroup.
        let current = current_cgroup()?;
        gw.cgroup = match &config.cgroup {
            CgroupPlacement::Current => current,
            CgroupPlacement::Join(dir) => {
                if *dir != current {
                    join_cgroup(dir)?;
                    gw.restore_cgroup = Some(current);
                }
                dir.clone()
            }
        };

        // 2. steering.
        let queues = match config.queues {
            Some(q) => q,
            None => rx_queue_count(&config.ifname).map_err(|source| BypassError::Queues {
                ifname: config.ifname.clone(),
                source,
            })?,
        };
        let needed = (queues as usize).saturating_mul(config.engine.tcp.max_connections);
        let steering_config = SteeringConfig {
            ifname: config.ifname.clone(),
            cgroup: gw.cgroup.clone(),
            xdp_mode: config.xdp_mode,
            pin_root: config.pin_root.clone(),
            max_user_flows: config
                .max_user_flows
                .max(u32::try_from(needed).unwrap_or(u32::MAX)),
            count_stats: true,
        };
        let steering = gw.steering.insert(Steering::load(&steering_config)?);

        // 3. sockets, engines, pollers.
        let mut xsk_config = config.xsk.clone();
        xsk_config.ifname = config.ifname.clone();
        let secret = random_secret()?;
        let clock = Clock::new();
        let cores = poller_cores(config, queues)?;
        // With several queues, a path MTU error can land on another queue than its
        // connection's: the pollers pass them on (`afxdp::PmtuRelay`).
        let pmtu_relay: Option<PmtuRelay> = (queues > 1).then(|| {
            Arc::new(
                (0..queues)
                    .map(|_| Arc::new(PmtuInbox::default()))
                    .collect(),
            )
        });
        for q in 0..queues {
            let queue = XskQueue::open(&xsk_config, q, steering.maps())?;
            let app = App::for_generation(&config.app, config.proxy.as_ref(), config.tls.as_ref())?;
            let engine = Engine::new(config.engine.clone(), app, secret, clock.now());
            let mut poller_config = config.poller.clone();
            poller_config.core = cores.get(q as usize).copied();
            poller_config.connection_limit = config.engine.tcp.max_connections;
            let mut poller = Poller::new(
                queue,
                engine,
                steering.maps().try_clone()?,
                poller_config,
                clock,
            )?;
            if let Some((links, capacity)) = access.as_mut() {
                poller.enable_access_log(links, *capacity);
            }
            if let Some(relay) = &pmtu_relay {
                poller.join_pmtu_relay(Arc::clone(relay));
            }
            poller.configure_proxy(UpstreamSideConfig {
                conns: UpstreamConnsConfig::default(),
                hash_key: config.upstream_hash_key,
                health: config.upstream_health.clone(),
            });
            let stop = Arc::clone(&gw.stop);
            let stats = poller.stats();
            let waker = poller.waker();
            let drain = poller.drain_flag();
            let reload = poller.reload_mailbox();
            // The thread pins itself first and says whether that worked, so a bad core is
            // start's error rather than a poller that silently never ran.
            let (ready_tx, ready_rx) = std::sync::mpsc::sync_channel(1);
            let thread = std::thread::Builder::new()
                .name(format!("xgate-q{q}"))
                .spawn(move || {
                    if let Err(e) = poller.pin_thread() {
                        let _ = ready_tx.send(Err(e));
                        return (poller, Ok(()));
                    }
                    let _ = ready_tx.send(Ok(()));
                    let result = poller.run(&stop);
                    (poller, result)
                })
                .map_err(BypassError::Spawn)?;
            gw.pollers.push(PollerHandle {
                queue: q,
                core: cores.get(q as usize).copied(),
                stats,
                waker,
                drain,
                reload,
                thread: Some(thread),
            });
            match ready_rx.recv() {
                Ok(Ok(())) => {}
                Ok(Err(e)) => return Err(e.into()),
                Err(_) => {
                    return Err(BypassError::Spawn(io::Error::other(
                        "poller thread ended before it started",
                    )))
                }
            }
        }

        // 4. kernel listeners, now that sock_ops watches the cgroup.
        for p in &config.ports {
            let listener = listen_socket(config.listen_addr_of(p.port), p.port, config.backlog)?;
            gw.listeners.push((p.port, Some(listener)));
            let maps = gw.maps();
            if maps.listener(p.port)?.is_none() {
                return Err(BypassError::NotTagged {
                    port: p.port,
                    cgroup: gw.cgroup.clone(),
                });
            }
        }

        // 5. steering state per port.
        for p in &config.ports {
            let state = if p.bypass {
                PortState::On
            } else {
                PortState::Off
            };
            gw.maps().set_port_state(p.port, state)?;
        }
        Ok(gw)
    }

    /// The steering maps (port states, counters, `user_flows`).
    pub fn maps(&self) -> &SteeringMaps {
        self.steering().maps()
    }

    /// The loaded steering programs.
    pub fn steering(&self) -> &Steering {
        self.steering
            .as_ref()
            .expect("steering is loaded for the gateway's whole life")
    }

    /// Switches a served port between the paths: `On` (bypass), `Draining`, `Off` (kernel).
    pub fn set_port_state(&self, port: u16, state: PortState) -> Result<(), BypassError> {
        if !self.ports.contains(&port) {
            return Err(BypassError::UnknownPort(port));
        }
        Ok(self.maps().set_port_state(port, state)?)
    }

    /// Served ports.
    pub fn ports(&self) -> &[u16] {
        &self.ports
    }

    /// The cgroup whose sockets sock_ops watches.
    pub fn cgroup(&self) -> &Path {
        &self.cgroup
    }

    /// Number of RX queues (pollers).
    pub fn queues(&self) -> usize {
        self.pollers.len()
    }

    /// The CPU each queue's poller is pinned to (`None`: not pinned), by queue.
    pub fn poller_cores(&self) -> Vec<Option<usize>> {
        self.pollers.iter().map(|p| p.core).collect()
    }

    /// Each poller's counters, by queue.
    pub fn counters(&self) -> Vec<PollerCounters> {
        self.pollers.iter().map(|p| p.stats.snapshot()).collect()
    }

    /// Each engine's TCP counters (drops by reason and all), by queue.
    pub fn tcp_stats_by_queue(&self) -> Vec<TcpStats> {
        self.pollers.iter().map(|p| p.stats.tcp_stats()).collect()
    }

    /// Each engine's HTTP counters (status classes, latency...), by queue.
    pub fn http_stats_by_queue(&self) -> Vec<HttpStats> {
        self.pollers.iter().map(|p| p.stats.http_stats()).collect()
    }

    /// Each poller's TLS counters, by queue.
    pub fn tls_stats_by_queue(&self) -> Vec<TlsStats> {
        self.pollers.iter().map(|p| p.stats.tls_stats()).collect()
    }

    /// Each poller's view of the upstream servers, one after the other (merge them with
    /// `UpstreamServerState::merge`).
    pub fn upstream_states(&self) -> Vec<UpstreamServerState> {
        self.pollers
            .iter()
            .flat_map(|p| p.stats.upstream_states())
            .collect()
    }

    /// The engines' TCP counters, summed over the pollers.
    pub fn tcp_stats(&self) -> TcpStats {
        let mut total = TcpStats::default();
        for q in self.tcp_stats_by_queue() {
            total.add(&q);
        }
        total
    }

    /// Bypass connections and requests by port, summed over the pollers.
    pub fn port_counts(&self) -> Vec<PortCount> {
        let each: Vec<Vec<PortCount>> =
            self.pollers.iter().map(|p| p.stats.port_counts()).collect();
        let slices: Vec<&[PortCount]> = each.iter().map(Vec::as_slice).collect();
        let mut out = Vec::new();
        tally::merge(&mut out, &slices);
        out
    }

    /// Whether every poller thread is still running.
    pub fn pollers_running(&self) -> bool {
        self.pollers
            .iter()
            .all(|p| p.thread.as_ref().is_some_and(|t| !t.is_finished()))
    }

    /// The kernel listener of `port`, unless it was taken.
    pub fn listener(&self, port: u16) -> Option<&TcpListener> {
        self.listeners
            .iter()
            .find(|(p, _)| *p == port)
            .and_then(|(_, l)| l.as_ref())
    }

    /// Hands the kernel listener of `port` to the kernel path. Closing it removes the port's
    /// tag, and with it the port's steering.
    pub fn take_listener(&mut self, port: u16) -> Option<TcpListener> {
        self.listeners
            .iter_mut()
            .find(|(p, _)| *p == port)
            .and_then(|(_, l)| l.take())
    }

    /// Graceful shutdown of the bypass connections ([`Engine::begin_drain`] in every poller):
    /// idle keep-alive connections close now, the others after their current response, with
    /// `Connection: close`. Set the ports `Draining` too so that no new connection comes; wait
    /// for the pollers' `connections` to reach zero, then [`Bypass::shutdown`].
    pub fn begin_drain(&self) {
        for p in &self.pollers {
            p.drain.store(true, Ordering::Relaxed);
            p.waker.wake();
        }
    }

    /// New routes, proxy generation and HTTP limits for every poller's engine
    /// ([`Engine::reload`]): built here
    /// (one [`App`] per poller), taken by each poller on its next round. Connections are not
    /// dropped; a response in progress finishes with the routes it started with.
    pub fn reload(
        &self,
        app: &AppConfig,
        proxy: Option<&Arc<ProxyConfig>>,
        tls: Option<&Arc<TlsPorts>>,
        limits: HttpLimits,
    ) -> Result<(), AppError> {
        let apps = self
            .pollers
            .iter()
            .map(|_| App::for_generation(app, proxy, tls))
            .collect::<Result<Vec<_>, _>>()?;
        for (p, app) in self.pollers.iter().zip(apps) {
            p.reload.post(Served { app, limits });
            p.waker.wake();
        }
        Ok(())
    }

    /// Stops and joins the pollers (their AF_XDP sockets close with them, so the steering falls
    /// back to the kernel for new connections; connections still open are reset first) and
    /// returns how each ended. Steering stays
    /// loaded until the gateway is dropped. A second call returns nothing.
    pub fn shutdown(&mut self) -> Vec<PollerExit> {
        self.stop.store(true, Ordering::Relaxed);
        for p in &self.pollers {
            p.waker.wake();
        }
        let mut exits = Vec::with_capacity(self.pollers.len());
        for p in &mut self.pollers {
            let Some(thread) = p.thread.take() else {
                continue;
            };
            exits.push(match thread.join() {
                Ok((poller, result)) => PollerExit {
                    queue: p.queue,
                    poller: Some(poller),
                    error: result.err(),
                    panicked: false,
                },
                Err(_) => PollerExit {
                    queue: p.queue,
                    poller: None,
                    error: None,
                    panicked: true,
                },
            });
        }
        exits
    }
}

impl Drop for Bypass {
    fn drop(&mut self) {
        drop(self.shutdown());
        self.listeners.clear();
        // Detaches XDP, then sock_ops, and removes the pins.
        self.steering = None;
        if let Some(home) = self.restore_cgroup.take() {
            let _ = join_cgroup(&home);
        }
    }
}

fn validate(config: &BypassConfig) -> Result<(), BypassError> {
    let bad = |s: String| Err(BypassError::Config(s));
    if config.ports.is_empty() {
        return bad("no port to serve".into());
    }
    for (i, p) in config.ports.iter().enumerate() {
        if p.port == 0 {
            return bad("port 0".into());
        }
        if config.ports[..i].iter().any(|q| q.port == p.port) {
            return bad(format!("port {} listed twice", p.port));
        }
    }
    if config.queues == Some(0) {
        return bad("zero queues".into());
    }
    if config.poller.batch_size == 0 {
        return bad("poller batch size 0".into());
    }
    if i32::try_from(config.backlog).is_err() {
        return bad(format!("backlog {}", config.backlog));
    }
    Ok(())
}

/// The process's cgroup v2 directory.
fn current_cgroup() -> Result<PathBuf, BypassError> {
    process_cgroup().map_err(|e| match e {
        CgroupLookup::Read { file, source } => BypassError::Cgroup {
            what: "reading",
            path: file,
            source,
        },
        CgroupLookup::NoV2Entry { file } => BypassError::Cgroup {
            what: "no cgroup v2 entry in",
            path: file,
            source: io::Error::from(io::ErrorKind::NotFound),
        },
        CgroupLookup::Root(e) => BypassError::Steering(e),
    })
}

/// Moves the whole process into the cgroup v2 directory `dir`.
fn join_cgroup(dir: &Path) -> Result<(), BypassError> {
    placement::join_cgroup(dir).map_err(|(path, source)| BypassError::Cgroup {
        what: "joining",
        path,
        source,
    })
}

fn random_secret() -> Result<[u8; 32], BypassError> {
    let mut secret = [0u8; 32];
    crate::sys::random_bytes(&mut secret).map_err(BypassError::Random)?;
    Ok(secret)
}

/// The pollers' CPUs by queue: the configured ones, or one chosen per queue when none are
/// configured and [`BypassConfig::pick_cores`] asks (logged, so the operator sees the choice).
fn poller_cores(config: &BypassConfig, queues: u32) -> Result<Vec<usize>, BypassError> {
    let Some(avoid) = config.pick_cores.filter(|_| config.cores.is_empty()) else {
        return Ok(config.cores.clone());
    };
    let cpus = CpuSet::of_interface(&config.ifname).map_err(BypassError::Cpus)?;
    let choice = cores::choose(queues, &cpus, avoid)
        .ok_or_else(|| BypassError::Cpus(io::Error::other("the process may run on no CPU")))?;
    if choice.shared {
        tracing::warn!(%choice, "poller CPUs chosen; set [bypass] cores to choose them");
    } else {
        tracing::info!(%choice, "poller CPUs chosen; set [bypass] cores to choose them");
    }
    Ok(choice.cores)
}

/// A listening TCP socket on `addr:port` with SO_REUSEADDR and the given backlog.
///
/// On a host without IPv6 (booted with `ipv6.disable=1`: `socket(AF_INET6)` fails with
/// EAFNOSUPPORT), `::` falls back to `0.0.0.0` with a warning: the default must not stop the
/// gateway where the old default (IPv4 alone) worked.
fn listen_socket(addr: IpAddr, port: u16, backlog: u32) -> Result<TcpListener, BypassError> {
    let listen = |addr| socket::tcp_listener(SocketAddr::new(addr, port), backlog);
    let result = match listen(addr) {
        Err(e)
            if addr == IpAddr::V6(Ipv6Addr::UNSPECIFIED)
                && e.call == "socket"
                && e.source.raw_os_error() == Some(libc::EAFNOSUPPORT) =>
        {
            tracing::warn!(
                port,
                "IPv6 is disabled on this host: listening on 0.0.0.0, IPv4 alone \
                 (set listen_addr = \"0.0.0.0\" to say so)"
            );
            listen(IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED))
        }
        other => other,
    };
    result.map_err(|e| BypassError::Listen {
        port,
        what: e.call,
        source: e.source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_configurations_are_refused_before_anything_is_touched() {
        let port = |port| PortConfig { port, bypass: true };
        let start = |c: BypassConfig| match Bypass::start(&c) {
            Err(BypassError::Config(msg)) => msg,
            other => panic!("{other:?}"),
        };
        assert!(start(BypassConfig::new("lo", [])).contains("no port"));
        assert!(start(BypassConfig::new("lo", [port(80), port(80)])).contains("twice"));
        assert!(start(BypassConfig::new("lo", [port(0)])).contains("port 0"));
        let mut c = BypassConfig::new("lo", [port(80)]);
        c.queues = Some(0);
        assert!(start(c).contains("zero queues"));
    }

    #[test]
    fn listener_binds_with_the_given_backlog_and_secret_is_random() {
        let l = listen_socket(IpAddr::V4(std::net::Ipv4Addr::LOCALHOST), 0, 16).unwrap();
        assert!(l.local_addr().unwrap().port() > 0);
        assert_ne!(random_secret().unwrap(), random_secret().unwrap());
    }
}
