//! `xgate run`: one interface's gateway from start to a clean exit.
//!
//! 1. Enters `--netns` (before any thread exists, so every thread lives there) and blocks
//!    SIGINT/SIGTERM/SIGHUP in the main thread ([`signals`](super::signals)).
//! 2. Joins the gateway's cgroup v2 (created as `<root>/xgate-<iface>` unless `--cgroup`
//!    names one) and starts the [`Bypass`]: steering, AF_XDP sockets, pollers, tagged listeners,
//!    ports on or off.
//! 3. Takes the kernel listeners and serves them with [`KernelPath`] on its own thread
//!    ([`kernel_thread`](super::kernel_thread)).
//! 4. Waits for a signal, rewriting the state file ([`publish`](super::publish)) every
//!    [`REFRESH`]; reloads at SIGHUP; stops early with an error if a poller or the kernel
//!    path dies.
//! 5. On SIGINT/SIGTERM: every port goes `draining` (user-space connections and answered
//!    handshakes finish in user space), the kernel path stops accepting (its listeners close,
//!    which also untags the ports, so a new connection is refused); on both paths idle
//!    keep-alive connections close at once and the others after their current response,
//!    which says `Connection: close`; the main thread waits until both paths have no
//!    connection left or the grace period ends (a second signal cuts it short); then the
//!    pollers reset what is still open and are joined, and the gateway is dropped: XDP and
//!    sock_ops detached, pins removed, state file and created cgroup removed.

use std::io;
use std::net::{SocketAddrV4, TcpListener};
use std::os::fd::OwnedFd;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant as StdInstant;

use crate::answers::{ReloadMailbox, Served};
use crate::app::{App, AppError, StaticFiles};
use crate::bpf::{AttachedMode, PortState, SteeringError};
use crate::config::{ConfigError, KernelDrive, LiveConfig, RunConfig};
use crate::kernel::KernelPath;
use crate::proxy::balance::HashKey;
use crate::proxy::config::ProxyConfig;
use crate::proxy::health::HealthBoard;
use crate::report::{
    unix_ms, AccessLogState, KernelState, ReloadState, ReportError, RuntimeState, ServedPort,
    REFRESH,
};
use crate::tls::TlsShared;
use crate::upstream::{UpstreamConnsConfig, UpstreamSideConfig};

use super::access_log::{self, AccessLinks, AccessLogError, AccessLogWriter};
use super::admin::{AdminEndpoint, AdminListener};
use super::health::HealthChecker;
use super::kernel_thread::{self, kernel_err};
use super::placement::{enter_netns, GatewayCgroup};
use super::publish::{self, Publisher};
use super::signals::SignalSet;
use super::{Bypass, BypassConfig, BypassError, CgroupPlacement};

/// Why the gateway could not start, or stopped on its own.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error("entering network namespace {name:?}: {source}")]
    Netns { name: String, source: io::Error },
    #[error("blocking SIGINT/SIGTERM: {0}")]
    Signals(io::Error),
    #[error("cgroup {path:?}: {source}")]
    Cgroup { path: PathBuf, source: io::Error },
    #[error("finding the cgroup v2 root: {0}")]
    CgroupRoot(#[from] SteeringError),
    #[error("starting the gateway: {0}")]
    Bypass(#[from] BypassError),
    #[error(transparent)]
    App(#[from] AppError),
    #[error("kernel path: {what}: {source}")]
    Kernel { what: String, source: io::Error },
    #[error("kernel path thread panicked")]
    KernelPanicked,
    #[error("a poller thread stopped while the gateway was running: {0}")]
    PollerStopped(String),
    #[error("admin endpoint on {addr}: {source}")]
    Admin {
        addr: SocketAddrV4,
        source: io::Error,
    },
    #[error(transparent)]
    Report(#[from] ReportError),
    #[error(transparent)]
    AccessLog(#[from] AccessLogError),
    #[error("TLS: {0}")]
    Tls(String),
}

/// What the caller is told once the gateway serves.
#[derive(Debug, Clone)]
pub struct Ready {
    pub ifname: String,
    pub queues: usize,
    /// The CPU of each queue's poller (`None`: not pinned), by queue.
    pub poller_cores: Vec<Option<usize>>,
    pub xdp_attached: &'static str,
    pub ports: Vec<ServedPort>,
    pub cgroup: PathBuf,
    /// Where `/metrics` and `/status` are served, if anywhere.
    pub admin: Option<SocketAddrV4>,
}

/// How the run ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stopped {
    pub signal: i32,
    /// Connections still open when the grace period ended (cut).
    pub cut_bypass: u64,
    pub kernel_clean: bool,
}

/// Runs the gateway until SIGINT or SIGTERM (see the module documentation). `on_ready` is
/// called once it serves.
pub fn run(
    mut config: RunConfig,
    reread: impl FnMut() -> Result<LiveConfig, ConfigError>,
    on_ready: impl FnOnce(&Ready),
) -> Result<Stopped, RunError> {
    if let Some(name) = &config.netns {
        enter_netns(name)?;
    }
    let signals = SignalSet::block()?;
    let cgroup = GatewayCgroup::choose(config.cgroup.as_deref(), &config.gateway.ifname)?;
    let result = run_in_cgroup(&mut config, cgroup.dir.clone(), &signals, reread, on_ready);
    // Empty again: the bypass moved the process back when it dropped.
    cgroup.remove_if_created();
    result
}

fn run_in_cgroup(
    config: &mut RunConfig,
    cgroup: PathBuf,
    signals: &SignalSet,
    mut reread: impl FnMut() -> Result<LiveConfig, ConfigError>,
    on_ready: impl FnOnce(&Ready),
) -> Result<Stopped, RunError> {
    // Taken, not cloned: the files of `[app] static_dir` are let go once every App holds them.
    let mut gw_config = std::mem::replace(
        &mut config.gateway,
        BypassConfig::new(String::new(), Vec::new()),
    );
    gw_config.cgroup = CgroupPlacement::Join(cgroup.clone());
    // Pollers without configured CPUs get one each, away from a pinned kernel path.
    let KernelDrive::Thread { core: kernel_core } = config.kernel_drive;
    gw_config.pick_cores = Some(kernel_core);
    let ifname = gw_config.ifname.clone();
    // Bound before the gateway joins its cgroup: sock_ops must never tag it.
    let admin_listener = match config.admin_listen {
        Some(addr) => {
            Some(AdminListener::bind(addr).map_err(|source| RunError::Admin { addr, source })?)
        }
        None => None,
    };
    // The log's file first: a path that cannot be written is refused before anything is
    // attached.
    if let Some(a) = &config.access_log {
        access_log::check_path(&a.path)?;
    }
    let mut access_links = AccessLinks::default();
    let access_buffer = config.access_log.as_ref().map(|a| a.buffer_records);
    // One key for every serving thread, so that consistent hashing agrees across them.
    let mut hash_key = [0u8; 16];
    crate::sys::random_bytes(&mut hash_key).map_err(kernel_err("getrandom"))?;
    let proxy = proxy_generation(&config.proxy);
    gw_config.proxy = proxy.clone();
    // The ticket keys and the session cache: one set for every thread, kept across reloads.
    let tls_shared =
        TlsShared::new(config.tls.session_cache).map_err(|e| RunError::Tls(e.to_string()))?;
    let tls = config
        .tls
        .load(&tls_shared)
        .map_err(|e| RunError::Tls(e.to_string()))?;
    gw_config.tls = tls.clone();
    gw_config.upstream_hash_key = HashKey(hash_key);
    // The active health checks' verdicts, followed by every serving thread.
    let health_board = Arc::new(HealthBoard::default());
    gw_config.upstream_health = Some(Arc::clone(&health_board));
    let mut gateway =
        Bypass::start_logged(&gw_config, access_buffer.map(|n| (&mut access_links, n)))?;

    // The kernel path takes every listener (they stay open, so the ports stay tagged).
    let app = App::for_generation(&gw_config.app, proxy.as_ref(), tls.as_ref())?;
    // The pollers' and the kernel path's Apps share the files; this copy of the config need
    // not keep them (a reload reads the directory again).
    gw_config.app.files = StaticFiles::default();
    let mut kernel = KernelPath::new(config.kernel.clone(), app).map_err(kernel_err("io_uring"))?;
    kernel.configure_proxy(UpstreamSideConfig {
        conns: UpstreamConnsConfig::default(),
        hash_key: HashKey(hash_key),
        health: Some(Arc::clone(&health_board)),
    });
    let mut health_checker = Some(
        HealthChecker::start(&config.proxy, &health_board)
            .map_err(kernel_err("starting the health checker"))?,
    );
    for p in &gw_config.ports {
        let listener: TcpListener = gateway
            .take_listener(p.port)
            .expect("the gateway holds a listener per port");
        listener
            .set_nonblocking(true)
            .map_err(kernel_err(format!("listener {}", p.port)))?;
        kernel
            .add_listener(OwnedFd::from(listener))
            .map_err(kernel_err(format!("listener {}", p.port)))?;
    }
    let kernel_link = access_buffer.map(|n| {
        kernel.enable_access_log(n);
        access_links.link(kernel.now(), n)
    });
    let kernel_state = Arc::new(Mutex::new(KernelState::default()));
    let kernel_stop = Arc::new(AtomicBool::new(false));
    let kernel_reload = Arc::new(ReloadMailbox::default());
    let KernelDrive::Thread { core } = config.kernel_drive;
    let mut kernel_thread = Some(kernel_thread::spawn(
        kernel,
        core,
        config.shutdown_grace,
        Arc::clone(&kernel_stop),
        Arc::clone(&kernel_state),
        Arc::clone(&kernel_reload),
        kernel_link,
    )?);
    let access_writer = match &config.access_log {
        Some(a) => Some(AccessLogWriter::start(a, access_links)?),
        None => None,
    };

    let ports: Vec<ServedPort> = gw_config
        .ports
        .iter()
        .map(|p| ServedPort {
            port: p.port,
            bypass_at_start: p.bypass,
        })
        .collect();
    let xdp_attached = match gateway.steering().attached_mode() {
        AttachedMode::Native => "native",
        AttachedMode::Generic => "generic",
    };
    let mut publisher = Publisher::new(
        RuntimeState {
            pid: std::process::id(),
            ifname: ifname.clone(),
            ports: ports.clone(),
            xdp_attached: xdp_attached.into(),
            cgroup: cgroup.display().to_string(),
            started_unix_ms: unix_ms(),
            phase: "running".into(),
            ..RuntimeState::default()
        },
        Arc::clone(&kernel_state),
    );
    publisher.write(&gateway)?;
    let admin = match admin_listener {
        Some(l) => {
            let addr = l.addr();
            Some(
                AdminEndpoint::start(l, &publisher.status(&gateway))
                    .map_err(|source| RunError::Admin { addr, source })?,
            )
        }
        None => None,
    };
    let mut admin_down_told = false;
    let access_path = config
        .access_log
        .as_ref()
        .map(|a| a.path.display().to_string());
    let publish = |publisher: &mut Publisher, gateway: &Bypass| -> Result<(), ReportError> {
        if let (Some(w), Some(path)) = (&access_writer, &access_path) {
            let (written, dropped, errors, reopens) = w.counts();
            publisher.state.access_log = Some(AccessLogState {
                path: path.clone(),
                written,
                dropped,
                errors,
                reopens,
            });
        }
        publisher.write(gateway)?;
        if let Some(a) = &admin {
            a.publish(&publisher.status(gateway));
        }
        Ok(())
    };
    tracing::info!(
        ifname = %ifname,
        queues = gateway.queues(),
        xdp = xdp_attached,
        ports = ?ports.iter().map(|p| (p.port, if p.bypass_at_start { "bypass" } else { "kernel" })).collect::<Vec<_>>(),
        admin = ?admin.as_ref().map(AdminEndpoint::addr),
        "serving"
    );
    on_ready(&Ready {
        ifname: ifname.clone(),
        queues: gateway.queues(),
        poller_cores: gateway.poller_cores(),
        xdp_attached,
        ports,
        cgroup,
        admin: admin.as_ref().map(AdminEndpoint::addr),
    });

    // Serve until SIGINT/SIGTERM, or until a path dies; reload at SIGHUP.
    let outcome = loop {
        match signals.wait(REFRESH)? {
            Some(libc::SIGUSR1) => {
                if let Some(w) = &access_writer {
                    w.reopen();
                }
            }
            Some(libc::SIGHUP) => {
                publisher.state.reload = apply_reload(
                    &mut reread,
                    &gateway,
                    &kernel_reload,
                    &publisher.state.reload,
                    (&mut health_checker, &health_board),
                    &tls_shared,
                );
            }
            Some(sig) => break Ok(sig),
            None => {}
        }
        if !admin_down_told && admin.as_ref().is_some_and(AdminEndpoint::is_finished) {
            // Metrics are lost, the traffic is not: keep serving, say so once.
            admin_down_told = true;
            tracing::error!(
                "the admin endpoint stopped (io_uring error); serving goes on without it"
            );
        }
        if !gateway.pollers_running() {
            break Err(RunError::PollerStopped(poller_errors(&mut gateway)));
        }
        if kernel_thread.as_ref().is_some_and(|t| t.is_finished()) {
            let t = kernel_thread.take().expect("checked");
            break Err(kernel_thread::join(t)
                .err()
                .unwrap_or(RunError::KernelPanicked));
        }
        publish(&mut publisher, &gateway)?;
    };
    let signal = match outcome {
        Ok(sig) => sig,
        Err(e) => {
            tracing::error!(error = %e, "a path stopped; shutting down");
            kernel_stop.store(true, Ordering::Relaxed);
            publish::remove(&ifname);
            return Err(e);
        }
    };

    // Stop accepting, drain, tear down.
    tracing::info!(
        signal,
        grace_secs = config.shutdown_grace.as_secs(),
        "draining: new connections refused, idle ones closed, responses in flight finish"
    );
    publisher.state.phase = "draining".into();
    for p in &gw_config.ports {
        // New SYNs to the kernel (which stops accepting next); user-space flows finish.
        let _ = gateway.set_port_state(p.port, PortState::Draining);
    }
    // Idle keep-alive connections close now, the others after their response.
    gateway.begin_drain();
    kernel_stop.store(true, Ordering::Relaxed);
    let deadline = StdInstant::now() + config.shutdown_grace;
    let mut kernel_clean = true;
    loop {
        let _ = publish(&mut publisher, &gateway);
        if kernel_thread.as_ref().is_some_and(|t| t.is_finished()) {
            kernel_clean = kernel_thread::join(kernel_thread.take().expect("checked")).is_ok();
        }
        let bypass_live: u64 = gateway.counters().iter().map(|c| c.connections).sum();
        if kernel_thread.is_none() && bypass_live == 0 {
            break;
        }
        if StdInstant::now() >= deadline {
            break;
        }
        match signals.wait(std::time::Duration::from_millis(100))? {
            Some(libc::SIGUSR1) => {
                if let Some(w) = &access_writer {
                    w.reopen();
                }
            }
            Some(libc::SIGHUP) | None => {}
            Some(_) => break, // a second SIGINT/SIGTERM: no more waiting
        }
    }
    let cut_bypass: u64 = gateway.counters().iter().map(|c| c.connections).sum();
    if cut_bypass > 0 {
        tracing::warn!(
            connections = cut_bypass,
            "grace period over: resetting the bypass connections still open"
        );
    }
    for exit in gateway.shutdown() {
        if let Some(e) = &exit.error {
            tracing::error!(queue = exit.queue, error = %e, "poller stopped with an error");
        } else if exit.panicked {
            tracing::error!(queue = exit.queue, "poller panicked");
        }
    }
    drop(gateway); // XDP and sock_ops detached, pins removed, back to the old cgroup
    if let Some(t) = kernel_thread {
        // Its own shutdown is bounded by the grace period plus five seconds.
        kernel_clean = kernel_thread::join(t).is_ok();
    }
    if let Some(w) = access_writer {
        // After every serving thread handed over its last records.
        w.finish();
    }
    if let Some(a) = admin {
        // Last: the pages stayed up while the paths drained.
        let _ = a.stop();
    }
    publish::remove(&ifname);
    Ok(Stopped {
        signal,
        cut_bypass,
        kernel_clean,
    })
}

/// The proxy's configuration as the serving threads' `App`s share it; `None` without any
/// `[[route]]` (requests are then answered as before, with no routing step).
fn proxy_generation(proxy: &ProxyConfig) -> Option<Arc<ProxyConfig>> {
    (!proxy.routes.is_empty()).then(|| Arc::new(proxy.clone()))
}

/// SIGHUP: the new routes and limits from `reread`, handed to every poller and to the
/// kernel path, or the reason they were refused (the running ones stay). Returns the new
/// reload record for the state file.
fn apply_reload(
    reread: &mut impl FnMut() -> Result<LiveConfig, ConfigError>,
    gateway: &Bypass,
    kernel: &ReloadMailbox,
    before: &ReloadState,
    (checker, board): (&mut Option<HealthChecker>, &Arc<HealthBoard>),
    tls_shared: &TlsShared,
) -> ReloadState {
    let outcome = reread().map_err(|e| e.to_string()).and_then(|next| {
        // Everything is built before anything is handed over: all or nothing.
        let proxy = proxy_generation(&next.proxy);
        // New certificates for new connections; open ones keep theirs.
        let tls = next.tls.load(tls_shared).map_err(|e| e.to_string())?;
        let kernel_app = App::for_generation(&next.app, proxy.as_ref(), tls.as_ref())
            .map_err(|e| e.to_string())?;
        gateway
            .reload(&next.app, proxy.as_ref(), tls.as_ref(), next.http)
            .map_err(|e| e.to_string())?;
        kernel.post(Served {
            app: kernel_app,
            limits: next.http,
        });
        Ok(next)
    });
    let mut after = ReloadState {
        requested: before.requested + 1,
        last_unix_ms: unix_ms(),
        ..before.clone()
    };
    match outcome {
        Ok(next) => {
            after.accepted += 1;
            after.last_error.clear();
            // The new pools' checks replace the old ones (verdicts of servers that stay
            // carry over on the board).
            if let Some(old) = checker.take() {
                old.stop();
            }
            match HealthChecker::start(&next.proxy, board) {
                Ok(c) => *checker = Some(c),
                Err(e) => {
                    tracing::error!(error = %e, "health checker not restarted: no active checks until the next reload")
                }
            }
            tracing::info!(
                reload = after.requested,
                routes = next.app.routes.len(),
                "reload accepted"
            );
        }
        Err(e) => {
            tracing::warn!(
                reload = after.requested,
                reason = %e,
                "reload refused, the running configuration stays"
            );
            after.last_error = e;
        }
    }
    after
}

fn poller_errors(gateway: &mut Bypass) -> String {
    let exits = gateway.shutdown();
    let msgs: Vec<String> = exits
        .iter()
        .filter_map(|e| match (&e.error, e.panicked) {
            (Some(err), _) => Some(format!("queue {}: {err}", e.queue)),
            (None, true) => Some(format!("queue {}: panicked", e.queue)),
            _ => None,
        })
        .collect();
    if msgs.is_empty() {
        "stopped without an error".into()
    } else {
        msgs.join("; ")
    }
}
