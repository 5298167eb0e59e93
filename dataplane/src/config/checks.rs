//! Each section's keys, checked and applied one by one to the library settings they fill,
//! with a message that names the key and the problem.

use crate::app::{App, AppConfig, RouteConfig, StaticError, StaticLimits};
use crate::gateway::BypassConfig;
use crate::kernel::KernelConfig;
use crate::time::Duration;

use super::{
    invalid, AppSection, BypassSection, ConfigError, HttpSection, KernelPathSection, Overrides,
    TcpSection,
};

/// `value` must lie in `range`.
pub(super) fn in_range<T: PartialOrd + std::fmt::Display>(
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

pub(super) fn power_of_two(key: &str, value: u64, min: u64, max: u64) -> Result<(), ConfigError> {
    if value.is_power_of_two() && (min..=max).contains(&value) {
        Ok(())
    } else {
        Err(invalid(
            key,
            format!("{value} must be a power of two from {min} to {max}"),
        ))
    }
}

pub(super) fn bypass_section(
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

pub(super) fn kernel_section(
    k: &mut KernelConfig,
    s: &KernelPathSection,
) -> Result<(), ConfigError> {
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

/// `tcp.<ring>_max`, the most a ring of `base` bytes grows to: the value given, else the
/// default (`default`) or `base` if that is larger (a ring above the default ceiling is its
/// own ceiling); below `base` is refused, naming the key.
fn ring_max(
    ring: &str,
    which: &str,
    given: Option<usize>,
    default: usize,
    base: usize,
) -> Result<usize, ConfigError> {
    let key = format!("tcp.{ring}_max");
    let max = match given {
        Some(n) => in_range(&key, n, 4096..=1 << 30)?,
        None => default.max(base),
    };
    if max < base {
        return Err(invalid(
            key,
            format!(
                "{max} is below tcp.{ring} ({base}); set it equal to turn {which}-buffer growth off"
            ),
        ));
    }
    Ok(max)
}

pub(super) fn tcp_section(gw: &mut BypassConfig, s: &TcpSection) -> Result<(), ConfigError> {
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
    t.tx_buffer_max = ring_max(
        "tx_buffer",
        "send",
        s.tx_buffer_max,
        t.tx_buffer_max,
        t.tx_buffer,
    )?;
    t.rx_buffer_max = ring_max(
        "rx_buffer",
        "receive",
        s.rx_buffer_max,
        t.rx_buffer_max,
        t.rx_buffer,
    )?;
    if let Some(n) = s.buffer_budget {
        t.buffer_budget = in_range("tcp.buffer_budget", n, 0..=1 << 40)?;
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
    if let Some(c) = s.congestion {
        t.congestion = c.into();
    }
    if let Some(h) = s.hystart {
        t.hystart = h;
    }
    if let Some(e) = s.ecn {
        t.ecn = e;
    }
    if let Some(n) = s.syn_cache {
        t.syn_cache = in_range("tcp.syn_cache", n, 0..=1 << 22)?;
    }
    if let Some(n) = s.syn_cache_rate {
        t.syn_cache_rate = in_range("tcp.syn_cache_rate", n, 0..=10_000_000)?;
    }
    if let Some(n) = s.syn_ack_retries {
        t.syn_ack_retries = in_range("tcp.syn_ack_retries", n, 0..=8)?;
    }
    Ok(())
}

pub(super) fn http_section(gw: &mut BypassConfig, s: &HttpSection) -> Result<(), ConfigError> {
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

pub(super) fn app_section(gw: &mut BypassConfig, s: &AppSection) -> Result<(), ConfigError> {
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
        app.files = crate::static_dir::load_static_dir(dir, prefix, &limits).map_err(|e| {
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
