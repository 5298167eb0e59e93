//! The `xgate` command line: one clap-derived type per subcommand, and [`RunArgs::config`],
//! which turns `xgate run`'s arguments into the one typed configuration the gateway starts
//! from ([`RunConfig`]). Parsing and validation happen here; doing things is `ctl`'s.

use std::net::Ipv4Addr;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::afxdp::{BindMode, CgroupPlacement, GatewayConfig, PortConfig};
use crate::bpf::XdpMode;
use crate::kernel::KernelConfig;
use crate::time::Duration;

/// xgate: an HTTP/1.1 gateway whose ports run on the kernel path (io_uring) or the bypass
/// path (XDP + AF_XDP + user-space TCP), switchable per port at run time. Root only.
#[derive(Debug, Parser)]
#[command(name = "xgate", version, propagate_version = true)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the gateway on one interface until SIGINT or SIGTERM.
    Run(RunArgs),
    /// Switch a running gateway's port to the bypass path (on) or back to the kernel (off).
    Bypass(BypassArgs),
    /// Show a running gateway's ports, paths and counters.
    Status(StatusArgs),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum XdpModeArg {
    /// Native (driver) mode, generic when the driver refuses.
    Auto,
    /// Native mode or fail.
    Native,
    /// Generic (SKB) mode.
    Generic,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum BindModeArg {
    /// Zero-copy when the driver supports it, copy otherwise.
    Auto,
    /// Copy mode.
    Copy,
    /// Zero-copy or fail.
    ZeroCopy,
}

/// `xgate run`.
#[derive(Debug, Clone, Args)]
pub struct RunArgs {
    /// Interface to serve (its RX queues get one poller each).
    #[arg(long, value_name = "IFACE")]
    pub iface: String,
    /// A port to serve; repeat for more. Ports not named in --bypass start on the kernel path.
    #[arg(long = "port", value_name = "PORT", required = true,
          value_parser = clap::value_parser!(u16).range(1..))]
    pub ports: Vec<u16>,
    /// A served port that starts on the bypass path; repeat for more.
    #[arg(long = "bypass", value_name = "PORT",
          value_parser = clap::value_parser!(u16).range(1..))]
    pub bypass: Vec<u16>,
    /// CPU of each RX queue's poller, by queue index (repeat); queues without one are not pinned.
    #[arg(long = "core", value_name = "CPU")]
    pub cores: Vec<usize>,
    /// Address the kernel listeners bind to.
    #[arg(long, value_name = "ADDR", default_value_t = Ipv4Addr::UNSPECIFIED)]
    pub listen_addr: Ipv4Addr,
    /// listen() backlog of the kernel listeners.
    #[arg(long, value_name = "N", default_value_t = 1024,
          value_parser = clap::value_parser!(u32).range(1..=i32::MAX as i64))]
    pub backlog: u32,
    /// How the XDP program is attached.
    #[arg(long, value_enum, default_value_t = XdpModeArg::Auto)]
    pub xdp_mode: XdpModeArg,
    /// AF_XDP copy or zero-copy.
    #[arg(long, value_enum, default_value_t = BindModeArg::Auto)]
    pub bind_mode: BindModeArg,
    /// RX queues to serve (default: the interface's channel count).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    pub queues: Option<u32>,
    /// Drive the kernel path on its own thread (the default: measured never slower than
    /// driving it from a polling loop, see docs/architecture.md).
    #[arg(long, conflicts_with = "kernel_path_in_poller")]
    pub kernel_path_thread: bool,
    /// Drive the kernel path from the AF_XDP poller's loop (not available yet: the poller has
    /// no hook for it; refused with an error).
    #[arg(long)]
    pub kernel_path_in_poller: bool,
    /// CPU to pin the kernel-path thread to.
    #[arg(long, value_name = "CPU")]
    pub kernel_core: Option<usize>,
    /// cgroup v2 directory whose sockets the gateway's sock_ops program watches; the process
    /// joins it. Default: `<cgroup2 root>/xgate-<IFACE>`, created and removed by the gateway.
    #[arg(long, value_name = "DIR")]
    pub cgroup: Option<PathBuf>,
    /// Enter this network namespace (a name under /var/run/netns) before anything else.
    #[arg(long, value_name = "NAME")]
    pub netns: Option<String>,
    /// On SIGINT/SIGTERM, how long in-flight connections may take to finish before they are cut.
    #[arg(long, value_name = "SECS", default_value_t = 5)]
    pub shutdown_grace_secs: u64,
}

/// What `bypass` does to the port.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Switch {
    /// New connections to the bypass path.
    On,
    /// Draining for --drain-secs, then the kernel path.
    Off,
}

/// `xgate bypass on|off PORT`.
#[derive(Debug, Clone, Args)]
pub struct BypassArgs {
    #[arg(value_enum)]
    pub switch: Switch,
    #[arg(value_name = "PORT", value_parser = clap::value_parser!(u16).range(1..))]
    pub port: u16,
    /// The gateway's interface; may be omitted when exactly one gateway runs.
    #[arg(long, value_name = "IFACE")]
    pub iface: Option<String>,
    /// `off`: how long the port stays draining (user-space connections and answered
    /// handshakes finish in user space) before it is off.
    #[arg(long, value_name = "N", default_value_t = 5)]
    pub drain_secs: u64,
}

/// `xgate status`.
#[derive(Debug, Clone, Args)]
pub struct StatusArgs {
    /// The gateway's interface; may be omitted when exactly one gateway runs.
    #[arg(long, value_name = "IFACE")]
    pub iface: Option<String>,
    /// JSON instead of a table.
    #[arg(long)]
    pub json: bool,
}

/// How the kernel path is driven.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KernelDrive {
    /// `KernelPath::run` on its own thread, optionally pinned.
    Thread { core: Option<usize> },
}

/// Everything `xgate run` starts from: the one typed configuration built from the command line.
#[derive(Debug, Clone)]
pub struct RunConfig {
    pub gateway: GatewayConfig,
    pub kernel: KernelConfig,
    pub kernel_drive: KernelDrive,
    /// `None`: create and remove `<cgroup2 root>/xgate-<iface>`.
    pub cgroup: Option<PathBuf>,
    pub netns: Option<String>,
    pub shutdown_grace: Duration,
}

/// Arguments that parse but do not make sense together.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ConfigError {
    #[error("--bypass {0} is not one of the served ports (--port)")]
    BypassNotServed(u16),
    #[error("--port {0} is given twice")]
    DuplicatePort(u16),
    #[error("--kernel-path-in-poller is not available: the AF_XDP poller has no hook to drive the kernel path yet; use --kernel-path-thread (the default)")]
    InPollerUnavailable,
    #[error("interface name {0:?} is not valid (1 to 15 bytes, no '/' or whitespace)")]
    BadIface(String),
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

impl RunArgs {
    /// The gateway's configuration, checked.
    pub fn config(&self) -> Result<RunConfig, ConfigError> {
        if !valid_iface(&self.iface) {
            return Err(ConfigError::BadIface(self.iface.clone()));
        }
        for (i, p) in self.ports.iter().enumerate() {
            if self.ports[..i].contains(p) {
                return Err(ConfigError::DuplicatePort(*p));
            }
        }
        if let Some(&b) = self.bypass.iter().find(|b| !self.ports.contains(b)) {
            return Err(ConfigError::BypassNotServed(b));
        }
        if self.kernel_path_in_poller {
            return Err(ConfigError::InPollerUnavailable);
        }
        let ports = self.ports.iter().map(|&port| PortConfig {
            port,
            bypass: self.bypass.contains(&port),
        });
        let mut gateway = GatewayConfig::new(self.iface.clone(), ports);
        gateway.listen_addr = self.listen_addr;
        gateway.backlog = self.backlog;
        gateway.xdp_mode = match self.xdp_mode {
            XdpModeArg::Auto => XdpMode::Auto,
            XdpModeArg::Native => XdpMode::Native,
            XdpModeArg::Generic => XdpMode::Generic,
        };
        gateway.xsk.bind_mode = match self.bind_mode {
            BindModeArg::Auto => BindMode::Auto,
            BindModeArg::Copy => BindMode::Copy,
            BindModeArg::ZeroCopy => BindMode::ZeroCopy,
        };
        gateway.queues = self.queues;
        gateway.cores = self.cores.clone();
        // The cgroup is decided at run time (it may have to be created first).
        gateway.cgroup = CgroupPlacement::Current;
        Ok(RunConfig {
            gateway,
            kernel: KernelConfig::default(),
            kernel_drive: KernelDrive::Thread {
                core: self.kernel_core,
            },
            cgroup: self.cgroup.clone(),
            netns: self.netns.clone(),
            shutdown_grace: Duration::from_secs(self.shutdown_grace_secs),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    fn parse(args: &[&str]) -> Result<Cli, clap::Error> {
        Cli::try_parse_from(std::iter::once("xgate").chain(args.iter().copied()))
    }

    fn run_args(args: &[&str]) -> RunArgs {
        match parse(args).unwrap().command {
            Command::Run(r) => r,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn cli_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn run_builds_the_gateway_config() {
        let r = run_args(&[
            "run",
            "--iface",
            "eth0",
            "--port",
            "80",
            "--port",
            "8080",
            "--bypass",
            "8080",
            "--core",
            "1",
            "--backlog",
            "64",
            "--xdp-mode",
            "generic",
            "--bind-mode",
            "copy",
        ]);
        let c = r.config().unwrap();
        assert_eq!(c.gateway.ifname, "eth0");
        assert_eq!(
            c.gateway.ports,
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
        assert_eq!(c.gateway.cores, vec![1]);
        assert_eq!(c.gateway.backlog, 64);
        assert_eq!(c.gateway.xdp_mode, XdpMode::Generic);
        assert_eq!(c.gateway.xsk.bind_mode, BindMode::Copy);
        assert_eq!(c.kernel_drive, KernelDrive::Thread { core: None });
    }

    #[test]
    fn run_refuses_inconsistent_arguments() {
        assert!(
            parse(&["run", "--iface", "eth0"]).is_err(),
            "a port is required"
        );
        assert!(parse(&["run", "--iface", "eth0", "--port", "0"]).is_err());
        assert!(parse(&["run", "--iface", "eth0", "--port", "70000"]).is_err());
        assert!(parse(&["run", "--iface", "e", "--port", "1", "--xdp-mode", "x"]).is_err());
        assert!(parse(&[
            "run",
            "--iface",
            "e",
            "--port",
            "1",
            "--kernel-path-thread",
            "--kernel-path-in-poller"
        ])
        .is_err());
        let r = run_args(&["run", "--iface", "eth0", "--port", "80", "--bypass", "81"]);
        assert_eq!(r.config().unwrap_err(), ConfigError::BypassNotServed(81));
        let r = run_args(&["run", "--iface", "eth0", "--port", "80", "--port", "80"]);
        assert_eq!(r.config().unwrap_err(), ConfigError::DuplicatePort(80));
        let r = run_args(&["run", "--iface", "../x", "--port", "80"]);
        assert!(matches!(r.config(), Err(ConfigError::BadIface(_))));
        let r = run_args(&[
            "run",
            "--iface",
            "e",
            "--port",
            "80",
            "--kernel-path-in-poller",
        ]);
        assert_eq!(r.config().unwrap_err(), ConfigError::InPollerUnavailable);
    }

    #[test]
    fn bypass_and_status_parse() {
        match parse(&["bypass", "off", "8080", "--drain-secs", "2"])
            .unwrap()
            .command
        {
            Command::Bypass(b) => {
                assert_eq!((b.switch, b.port, b.drain_secs), (Switch::Off, 8080, 2));
                assert_eq!(b.iface, None);
            }
            other => panic!("{other:?}"),
        }
        assert!(parse(&["bypass", "maybe", "80"]).is_err());
        match parse(&["status", "--iface", "eth0", "--json"])
            .unwrap()
            .command
        {
            Command::Status(s) => assert!(s.json && s.iface.as_deref() == Some("eth0")),
            other => panic!("{other:?}"),
        }
    }
}
