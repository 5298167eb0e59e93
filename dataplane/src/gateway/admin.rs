//! The admin endpoint: `GET /metrics` (Prometheus text format) and `GET /status` (the JSON of
//! `xgate status --json`) on `[admin] listen`.
//!
//! Served through the kernel stack by a [`KernelPath`] of its own on a thread of its own, so
//! that a flood on the served ports neither delays a scrape nor is delayed by one, and the
//! served ports' path keeps its bounds to itself. The pages are static answers of an [`App`]
//! the main thread rebuilds from what it publishes anyway (every [`REFRESH`](crate::report::REFRESH)) and posts in a
//! [`ReloadMailbox`]: the same reload machinery as the routes, so a scrape in progress
//! finishes with the page it started.

use std::net::{SocketAddrV4, TcpListener};
use std::os::fd::OwnedFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;

use crate::answers::{ReloadMailbox, Served};
use crate::app::{App, AppConfig, RouteConfig};
use crate::http::HttpLimits;
use crate::kernel::{KernelConfig, KernelPath};
use crate::report::Status;
use crate::sys::socket;
use crate::time::Duration;

use super::metrics;

/// `Content-Type` of the Prometheus text exposition format.
pub const METRICS_CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// A bound admin listener, before its thread runs (bind it before the process joins the
/// gateway's cgroup, so sock_ops never sees it).
#[derive(Debug)]
pub struct AdminListener {
    listener: TcpListener,
    addr: SocketAddrV4,
}

impl AdminListener {
    pub fn bind(addr: SocketAddrV4) -> std::io::Result<Self> {
        // std's TcpListener::bind did the same: SO_REUSEADDR and a backlog of 128.
        let listener = socket::tcp_listener(addr, 128).map_err(|e| e.source)?;
        let addr = match listener.local_addr()? {
            std::net::SocketAddr::V4(a) => a,
            std::net::SocketAddr::V6(_) => addr,
        };
        listener.set_nonblocking(true)?;
        Ok(AdminListener { listener, addr })
    }

    pub fn addr(&self) -> SocketAddrV4 {
        self.addr
    }
}

/// The running endpoint.
pub struct AdminEndpoint {
    addr: SocketAddrV4,
    stop: Arc<AtomicBool>,
    pages: Arc<ReloadMailbox>,
    thread: Option<JoinHandle<std::io::Result<()>>>,
}

/// Bounds of the admin path: a few operators and a Prometheus or two, short timeouts.
fn admin_config() -> KernelConfig {
    KernelConfig {
        http: HttpLimits {
            header_timeout: Duration::from_secs(5),
            idle_timeout: Duration::from_secs(60),
            ..HttpLimits::default()
        },
        max_connections: 64,
        ring_entries: 256,
        recv_buffers: 64,
        recv_buffer_len: 4096,
        ..KernelConfig::default()
    }
}

/// The admin pages as an [`App`]: `/metrics` and `/status`, nothing else (404).
pub fn pages(status: &Status) -> Result<App, crate::app::AppError> {
    let json = serde_json::to_vec_pretty(status).unwrap_or_default();
    App::new(&AppConfig {
        routes: vec![
            RouteConfig {
                method: "GET".into(),
                path: "/metrics".into(),
                status: 200,
                headers: vec![("Content-Type".into(), METRICS_CONTENT_TYPE.into())],
                body: metrics::render(status).into_bytes(),
            },
            RouteConfig {
                method: "GET".into(),
                path: "/status".into(),
                status: 200,
                headers: vec![("Content-Type".into(), "application/json".into())],
                body: json,
            },
        ],
        builtin_routes: false,
        ..AppConfig::default()
    })
}

impl AdminEndpoint {
    /// Starts serving `listener` on a thread named `xgate-admin`, with `first` as the pages.
    pub fn start(listener: AdminListener, first: &Status) -> std::io::Result<Self> {
        let app = pages(first).map_err(|e| std::io::Error::other(e.to_string()))?;
        let mut kernel = KernelPath::new(admin_config(), app)?;
        kernel.add_listener(OwnedFd::from(listener.listener))?;
        let stop = Arc::new(AtomicBool::new(false));
        let pages = Arc::new(ReloadMailbox::default());
        let (thread_stop, thread_pages) = (Arc::clone(&stop), Arc::clone(&pages));
        let thread = std::thread::Builder::new()
            .name("xgate-admin".into())
            .spawn(move || {
                while !thread_stop.load(Ordering::Relaxed) {
                    if let Some(next) = thread_pages.take() {
                        kernel.reload(next);
                    }
                    // Returns at least every sweep period (250 ms), so new pages and `stop`
                    // are seen when idle too.
                    kernel.run_once()?;
                }
                kernel.shutdown(Duration::from_secs(1))
            })?;
        Ok(AdminEndpoint {
            addr: listener.addr,
            stop,
            pages,
            thread: Some(thread),
        })
    }

    pub fn addr(&self) -> SocketAddrV4 {
        self.addr
    }

    /// New pages from `status` (the ones being sent finish unchanged).
    pub fn publish(&self, status: &Status) {
        if let Ok(app) = pages(status) {
            self.pages.post(Served {
                app,
                limits: admin_config().http,
            });
        }
    }

    /// Whether the thread stopped on its own (an io_uring error).
    pub fn is_finished(&self) -> bool {
        self.thread.as_ref().is_none_or(|t| t.is_finished())
    }

    /// Stops the thread and closes the listener and its connections.
    pub fn stop(mut self) -> std::io::Result<()> {
        self.stop_inner()
    }

    fn stop_inner(&mut self) -> std::io::Result<()> {
        self.stop.store(true, Ordering::Relaxed);
        match self.thread.take() {
            Some(t) => t
                .join()
                .unwrap_or_else(|_| Err(std::io::Error::other("the admin thread panicked"))),
            None => Ok(()),
        }
    }
}

impl Drop for AdminEndpoint {
    fn drop(&mut self) {
        let _ = self.stop_inner();
    }
}
