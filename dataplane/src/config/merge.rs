//! The flags laid over the file: built-in defaults, then the file, then the command line,
//! checked key by key into the one [`RunConfig`] the gateway starts from.

use std::net::{IpAddr, SocketAddrV4};
use std::path::PathBuf;

use crate::afxdp::BindMode;
use crate::bpf::XdpMode;
use crate::gateway::access_log::AccessLogConfig;
use crate::gateway::{BypassConfig, CgroupPlacement, PortConfig};
use crate::kernel::KernelConfig;
use crate::logging::{LogConfig, LogFormat};
use crate::time::Duration;

use super::checks::{
    app_section, bypass_section, http_section, in_range, kernel_section, tcp_section,
};
use super::proxy::proxy_sections;
use super::tls::tls_section;
use super::{invalid, valid_iface, ConfigError, ConfigFile, KernelDrive, LogFormatKey, RunConfig};

/// Command-line values laid over the file: `Some` (or a non-empty list) wins.
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    pub interface: Option<String>,
    /// Replaces the file's ports when not empty; `bypass` then names those on the bypass path.
    pub ports: Vec<u16>,
    pub bypass: Vec<u16>,
    pub cores: Vec<usize>,
    pub listen_addr: Option<IpAddr>,
    pub backlog: Option<u32>,
    pub xdp_mode: Option<XdpMode>,
    pub bind_mode: Option<BindMode>,
    pub queues: Option<u32>,
    pub kernel_core: Option<usize>,
    pub cgroup: Option<PathBuf>,
    pub netns: Option<String>,
    pub shutdown_grace_secs: Option<u64>,
    pub admin_listen: Option<SocketAddrV4>,
    pub access_log: Option<PathBuf>,
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
        let key = if over.listen_addr.is_some() {
            "--listen-addr"
        } else {
            "listen_addr"
        };
        gw.listen_addr = listen_addr(key, a)?;
    }
    for p in &file.ports {
        if let Some(a) = p.listen_addr {
            let key = format!("[[ports]] {}: listen_addr", p.port);
            let a = listen_addr(&key, a)?;
            if gw.ports.iter().any(|served| served.port == p.port) {
                gw.port_listen_addrs.push((p.port, a));
            }
        }
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
        congestion: Some(gw.engine.tcp.congestion.linux_name()),
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
    let access_log = access_log(file, over)?;
    let proxy = proxy_sections(&file.upstream, &file.route)?;
    let tls_ports = file
        .ports
        .iter()
        .filter(|p| p.tls && gw.ports.iter().any(|s| s.port == p.port))
        .map(|p| p.port)
        .collect();
    let tls = tls_section(&file.tls, tls_ports)?;
    gw.engine.tls_handshakes_per_round = tls.handshakes_per_round;
    kernel.tls_handshakes_per_round = tls.handshakes_per_round;
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
        access_log,
        proxy,
        tls,
    })
}

/// `[access_log]` under `--access-log PATH`: the path (the flag wins), the format, the
/// per-thread buffer.
fn access_log(file: &ConfigFile, over: &Overrides) -> Result<Option<AccessLogConfig>, ConfigError> {
    let section = &file.access_log;
    let Some(path) = over.access_log.clone().or_else(|| section.path.clone()) else {
        if section.format.is_some() || section.buffer_records.is_some() {
            return Err(invalid(
                "access_log.path",
                "missing: the access log's other keys need a path",
            ));
        }
        return Ok(None);
    };
    let key = if over.access_log.is_some() {
        "--access-log"
    } else {
        "access_log.path"
    };
    if path.as_os_str().is_empty() || path.is_dir() {
        return Err(invalid(
            key,
            format!("{} is not a file path", path.display()),
        ));
    }
    let buffer_records = section
        .buffer_records
        .unwrap_or(AccessLogConfig::DEFAULT_BUFFER_RECORDS);
    let buffer_records = in_range("access_log.buffer_records", buffer_records, 16..=1_048_576)?;
    Ok(Some(AccessLogConfig {
        path,
        format: match section.format {
            Some(LogFormatKey::Json) => crate::access::LogFormat::Json,
            Some(LogFormatKey::Text) | None => crate::access::LogFormat::Text,
        },
        buffer_records,
    }))
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

/// A listen address the kernel can bind: not an IPv4-mapped IPv6 address (write the IPv4
/// address: the socket would be IPv6-only and refuse it), not a link-local or multicast IPv6
/// one (no interface to scope it to).
fn listen_addr(key: &str, a: IpAddr) -> Result<IpAddr, ConfigError> {
    if let IpAddr::V6(v6) = a {
        if let Some(v4) = v6.to_ipv4_mapped() {
            return Err(invalid(
                key,
                format!("{a} is an IPv4-mapped address: write {v4} (IPv4 alone) or :: (both)"),
            ));
        }
        if v6.is_unicast_link_local() || v6.is_multicast() {
            return Err(invalid(
                key,
                format!(
                    "{a} is link-local or multicast: give a global or unique local address, or ::"
                ),
            ));
        }
    } else if a.is_multicast() {
        return Err(invalid(key, format!("{a} is a multicast address")));
    }
    Ok(a)
}
