//! The `xgate` command line: one clap-derived type per subcommand, and [`RunArgs::config`],
//! which lays `xgate run`'s flags over its `--config` file to give the one typed
//! configuration the gateway starts from ([`RunConfig`], checked in `config`). What each
//! subcommand does and prints is [`commands`].

pub mod commands;

use std::net::{IpAddr, SocketAddrV4};
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::afxdp::BindMode;
use crate::bpf::XdpMode;
use crate::config::{self, ConfigError, ConfigFile, ConfigSource, Overrides, RunConfig};

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
    Run(Box<RunArgs>),
    /// Switch a running gateway's port to the bypass path (on) or back to the kernel (off).
    Bypass(BypassArgs),
    /// Show a running gateway's ports, paths and counters.
    Status(StatusArgs),
    /// Make a running gateway re-read its configuration file (as SIGHUP does): routes and
    /// [http] limits change without dropping a connection; anything else needs a restart.
    Reload(ReloadArgs),
    /// Check a configuration file without starting anything.
    CheckConfig(CheckConfigArgs),
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
    /// TOML configuration file (see docs/configuration.md); flags given here override it.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Interface to serve (its RX queues get one poller each). Required unless the file
    /// names it.
    #[arg(long, value_name = "IFACE")]
    pub iface: Option<String>,
    /// A port to serve; repeat for more. Replaces the file's ports. Ports not named in
    /// --bypass start on the kernel path.
    #[arg(long = "port", value_name = "PORT",
          value_parser = clap::value_parser!(u16).range(1..))]
    pub ports: Vec<u16>,
    /// A served port that starts on the bypass path; repeat for more. Without --port, picks
    /// among the file's ports (replacing their `bypass` settings).
    #[arg(long = "bypass", value_name = "PORT",
          value_parser = clap::value_parser!(u16).range(1..))]
    pub bypass: Vec<u16>,
    /// CPU of each RX queue's poller, by queue index (repeat); queues without one are not
    /// pinned.
    #[arg(long = "core", value_name = "CPU")]
    pub cores: Vec<usize>,
    /// Address the listeners bind to: `::` serves IPv4 and IPv6, an IPv4 address IPv4 alone,
    /// another IPv6 address IPv6 alone [default: ::].
    #[arg(long, value_name = "ADDR")]
    pub listen_addr: Option<IpAddr>,
    /// listen() backlog of the kernel listeners [default: 1024].
    #[arg(long, value_name = "N",
          value_parser = clap::value_parser!(u32).range(1..=i32::MAX as i64))]
    pub backlog: Option<u32>,
    /// How the XDP program is attached [default: auto].
    #[arg(long, value_enum)]
    pub xdp_mode: Option<XdpModeArg>,
    /// AF_XDP copy or zero-copy [default: auto].
    #[arg(long, value_enum)]
    pub bind_mode: Option<BindModeArg>,
    /// RX queues to serve [default: the interface's channel count].
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    pub queues: Option<u32>,
    /// CPU to pin the kernel path's thread to (it runs on its own thread: measured never
    /// slower than driving it from the poller's loop, see docs/architecture.md).
    #[arg(long, value_name = "CPU")]
    pub kernel_core: Option<usize>,
    /// cgroup v2 directory whose sockets the gateway's sock_ops program watches; the process
    /// joins it. `self`: the cgroup xgate runs in (under systemd, the service's own; nothing
    /// to create, no CAP_SYS_ADMIN). Default: `<cgroup2 root>/xgate-<IFACE>`, created and
    /// removed by the gateway.
    #[arg(long, value_name = "DIR")]
    pub cgroup: Option<PathBuf>,
    /// Enter this network namespace (a name under /var/run/netns) before anything else.
    #[arg(long, value_name = "NAME")]
    pub netns: Option<String>,
    /// On SIGINT/SIGTERM, how long in-flight connections may take to finish before they are
    /// cut [default: 5].
    #[arg(long, value_name = "SECS")]
    pub shutdown_grace_secs: Option<u64>,
    /// Serve `/metrics` (Prometheus text format) and `/status` (the JSON of `xgate status
    /// --json`) on this IPv4 address and port, through the kernel stack, on a thread of its
    /// own. Default: no endpoint. Bind it to a management address, not the served one.
    #[arg(long, value_name = "ADDR:PORT")]
    pub admin_listen: Option<SocketAddrV4>,
    /// Write one line per request to this file (text; `[access_log]` in the file sets the
    /// format and the buffer). SIGUSR1 reopens it. Default: no access log.
    #[arg(long, value_name = "PATH")]
    pub access_log: Option<PathBuf>,
}

/// `xgate check-config FILE`.
#[derive(Debug, Clone, Args)]
pub struct CheckConfigArgs {
    /// The TOML file to check (as `xgate run --config FILE` would read it, without flags).
    #[arg(value_name = "FILE")]
    pub file: PathBuf,
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
    /// `on`: new connections of the port go to user space; `off`: back to the kernel stack.
    /// Connections already open stay on their path either way (none is reset).
    #[arg(value_enum)]
    pub switch: Switch,
    /// A port the gateway serves (`xgate status` lists them).
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

/// `xgate reload`.
#[derive(Debug, Clone, Args)]
pub struct ReloadArgs {
    /// The gateway's interface; may be omitted when exactly one gateway runs.
    #[arg(long, value_name = "IFACE")]
    pub iface: Option<String>,
    /// How long to wait for the gateway's verdict.
    #[arg(long, value_name = "SECS", default_value_t = 10)]
    pub timeout_secs: u64,
}

impl RunArgs {
    /// The flags as overrides of the file.
    pub fn overrides(&self) -> Overrides {
        Overrides {
            interface: self.iface.clone(),
            ports: self.ports.clone(),
            bypass: self.bypass.clone(),
            cores: self.cores.clone(),
            listen_addr: self.listen_addr,
            backlog: self.backlog,
            xdp_mode: self.xdp_mode.map(|m| match m {
                XdpModeArg::Auto => XdpMode::Auto,
                XdpModeArg::Native => XdpMode::Native,
                XdpModeArg::Generic => XdpMode::Generic,
            }),
            bind_mode: self.bind_mode.map(|m| match m {
                BindModeArg::Auto => BindMode::Auto,
                BindModeArg::Copy => BindMode::Copy,
                BindModeArg::ZeroCopy => BindMode::ZeroCopy,
            }),
            queues: self.queues,
            kernel_core: self.kernel_core,
            cgroup: self.cgroup.clone(),
            netns: self.netns.clone(),
            shutdown_grace_secs: self.shutdown_grace_secs,
            admin_listen: self.admin_listen,
            access_log: self.access_log.clone(),
        }
    }

    /// The gateway's configuration: defaults, then `--config FILE`, then the flags; checked.
    pub fn config(&self) -> Result<RunConfig, ConfigError> {
        self.config_and_source().map(|(c, _)| c)
    }

    /// [`config`](Self::config), and what re-reads the same file with the same flags at a
    /// reload (the path made absolute, so a reload reads the same file wherever it runs).
    pub fn config_and_source(&self) -> Result<(RunConfig, ConfigSource), ConfigError> {
        let path = match &self.config {
            Some(path) => Some(std::path::absolute(path).map_err(|e| ConfigError::Read {
                path: path.clone(),
                message: e.to_string(),
            })?),
            None => None,
        };
        let file = match &path {
            Some(path) => ConfigFile::load(path)?,
            None => ConfigFile::default(),
        };
        let overrides = self.overrides();
        let config = config::build(&file, &overrides)?;
        Ok((config, ConfigSource::new(path, overrides, file)))
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
            Command::Run(r) => *r,
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
        let ports: Vec<(u16, bool)> = c.gateway.ports.iter().map(|p| (p.port, p.bypass)).collect();
        assert_eq!(ports, vec![(80, false), (8080, true)]);
        assert_eq!(c.gateway.cores, vec![1]);
        assert_eq!(c.gateway.backlog, 64);
        assert_eq!(c.gateway.xdp_mode, XdpMode::Generic);
        assert_eq!(c.gateway.xsk.bind_mode, BindMode::Copy);
        assert_eq!(
            c.kernel_drive,
            crate::config::KernelDrive::Thread { core: None }
        );
    }

    #[test]
    fn run_reads_the_config_file_and_flags_override_it() {
        let dir = std::env::temp_dir().join(format!("xgate-cli-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("gw.toml");
        std::fs::write(
            &file,
            "interface = \"eth3\"\nbacklog = 99\n[[ports]]\nport = 80\nbypass = true\n",
        )
        .unwrap();
        let path = file.to_str().unwrap();
        let c = run_args(&["run", "--config", path]).config().unwrap();
        assert_eq!((c.gateway.ifname.as_str(), c.gateway.backlog), ("eth3", 99));
        assert!(c.gateway.ports[0].bypass);
        let c = run_args(&["run", "--config", path, "--backlog", "7", "--iface", "eth4"])
            .config()
            .unwrap();
        assert_eq!((c.gateway.ifname.as_str(), c.gateway.backlog), ("eth4", 7));
        let missing = dir.join("none.toml");
        let e = run_args(&["run", "--config", missing.to_str().unwrap()])
            .config()
            .unwrap_err();
        assert!(matches!(e, ConfigError::Read { .. }), "{e}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn run_refuses_inconsistent_arguments() {
        assert!(parse(&["run", "--iface", "eth0", "--port", "0"]).is_err());
        assert!(parse(&["run", "--iface", "eth0", "--port", "70000"]).is_err());
        assert!(parse(&["run", "--iface", "e", "--port", "1", "--xdp-mode", "x"]).is_err());
        let e = run_args(&["run", "--iface", "eth0"]).config().unwrap_err();
        assert!(e.to_string().starts_with("ports: no port to serve"), "{e}");
        let e = run_args(&["run", "--port", "80"]).config().unwrap_err();
        assert!(e.to_string().starts_with("interface: missing"), "{e}");
        let e = run_args(&["run", "--iface", "eth0", "--port", "80", "--bypass", "81"])
            .config()
            .unwrap_err();
        assert!(e.to_string().starts_with("--bypass: 81"), "{e}");
        let e = run_args(&["run", "--iface", "eth0", "--port", "80", "--port", "80"])
            .config()
            .unwrap_err();
        assert!(
            e.to_string().starts_with("--port: 80 is given twice"),
            "{e}"
        );
        let e = run_args(&["run", "--iface", "../x", "--port", "80"])
            .config()
            .unwrap_err();
        assert!(e.to_string().starts_with("interface:"), "{e}");
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
        match parse(&["check-config", "/etc/xgate.toml"]).unwrap().command {
            Command::CheckConfig(c) => assert_eq!(c.file, PathBuf::from("/etc/xgate.toml")),
            other => panic!("{other:?}"),
        }
    }
}
