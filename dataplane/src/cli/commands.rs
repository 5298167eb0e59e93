//! What each `xgate` subcommand does and prints: it calls the running process
//! ([`crate::gateway`]) or the operator's commands ([`crate::ctl`]) and says the outcome on
//! stdout; errors get their context here and are printed by `main`.

use std::io::Write;
use std::time::Duration;

use anyhow::Context;

use crate::config::{self, ConfigFile, Overrides};
use crate::ctl;
use crate::gateway::run::Ready;

use super::{BypassArgs, CheckConfigArgs, Command, ReloadArgs, RunArgs, StatusArgs, Switch};

/// Runs `command` to its end.
pub fn execute(command: Command) -> anyhow::Result<()> {
    match command {
        Command::Run(args) => run(&args),
        Command::Bypass(args) => bypass(&args),
        Command::Status(args) => status(&args),
        Command::Reload(args) => reload(&args),
        Command::CheckConfig(args) => check_config(&args),
    }
}

fn run(args: &RunArgs) -> anyhow::Result<()> {
    ctl::require_root()?;
    let (config, mut source) = args.config_and_source().context("xgate run")?;
    ctl::require_capabilities(&ctl::RUN_CAPABILITIES)?;
    if config.netns.is_some() {
        ctl::require_capabilities(&[ctl::CAP_SYS_ADMIN])?;
    }
    crate::logging::init(&config.log)
        .map_err(anyhow::Error::msg)
        .context("xgate run: the log")?;
    let ifname = config.gateway.ifname.clone();
    let stopped = crate::gateway::run::run(
        config,
        || source.reread(),
        |r: &Ready| {
            println!(
                "xgate: serving {} on {} queue(s), XDP {}, cgroup {}: ports {}",
                r.ifname,
                r.queues,
                r.xdp_attached,
                r.cgroup.display(),
                port_list(r.ports.iter().map(|p| (p.port, p.bypass_at_start)))
            );
            println!("xgate: pollers: {}", poller_cores(&r.poller_cores));
            if let Some(a) = r.admin {
                println!("xgate: admin endpoint on http://{a}/metrics and http://{a}/status");
            }
            println!("xgate: ready (pid {})", std::process::id());
            let _ = std::io::stdout().flush();
        },
    )
    .with_context(|| format!("gateway on {ifname}"))?;
    println!(
        "xgate: signal {} received; drained (bypass connections cut: {}, kernel path {}); XDP and sock_ops detached, pins removed",
        stopped.signal,
        stopped.cut_bypass,
        if stopped.kernel_clean { "closed cleanly" } else { "cut at the deadline" }
    );
    Ok(())
}

/// `queue 0 on CPU 1, queue 1 unpinned`.
fn poller_cores(cores: &[Option<usize>]) -> String {
    let each = cores.iter().enumerate().map(|(q, c)| match c {
        Some(c) => format!("queue {q} on CPU {c}"),
        None => format!("queue {q} unpinned"),
    });
    each.collect::<Vec<_>>().join(", ")
}

fn reload(args: &ReloadArgs) -> anyhow::Result<()> {
    ctl::require_root()?;
    let done = ctl::reload::reload(
        args.iface.as_deref(),
        Duration::from_secs(args.timeout_secs),
    )
    .context("xgate reload")?;
    println!(
        "xgate: reload {} accepted by the gateway on {} (pid {}): new requests use the new routes and limits",
        done.requested, done.ifname, done.pid
    );
    Ok(())
}

/// Checks a file as `xgate run --config FILE` would, without privileges or side effects.
fn check_config(args: &CheckConfigArgs) -> anyhow::Result<()> {
    let file = ConfigFile::load(&args.file)?;
    let c = config::build(&file, &Overrides::default())
        .with_context(|| format!("{}", args.file.display()))?;
    println!(
        "{}: valid: interface {}, ports {}, {} route(s)",
        args.file.display(),
        c.gateway.ifname,
        port_list(c.gateway.ports.iter().map(|p| (p.port, p.bypass))),
        c.gateway.app.routes.len()
    );
    Ok(())
}

/// "8080 (bypass), 8081 (kernel)": the ports and the path each starts on.
fn port_list(ports: impl Iterator<Item = (u16, bool)>) -> String {
    let named: Vec<String> = ports
        .map(|(port, bypass)| format!("{port} ({})", if bypass { "bypass" } else { "kernel" }))
        .collect();
    named.join(", ")
}

fn bypass(args: &BypassArgs) -> anyhow::Result<()> {
    ctl::require_root()?;
    let iface = args.iface.as_deref();
    let done = match args.switch {
        Switch::On => ctl::switch::bypass_on(iface, args.port),
        Switch::Off => ctl::switch::bypass_off(
            iface,
            args.port,
            Duration::from_secs(args.drain_secs),
            |gw| {
                println!(
                    "xgate: port {} on {} draining for {} s",
                    args.port, gw.ifname, args.drain_secs
                );
                let _ = std::io::stdout().flush();
            },
        ),
    }
    .with_context(|| {
        let how = match args.switch {
            Switch::On => "on",
            Switch::Off => "off",
        };
        format!("xgate bypass {how} {}", args.port)
    })?;
    println!(
        "xgate: port {} on {}: {} -> {:?}",
        done.port,
        done.gateway.ifname,
        done.before
            .map_or("unset".to_string(), |s| format!("{s:?}")),
        done.after
    );
    Ok(())
}

fn status(args: &StatusArgs) -> anyhow::Result<()> {
    ctl::require_root()?;
    let status = ctl::status::collect(args.iface.as_deref()).context("xgate status")?;
    let text = if args.json {
        serde_json::to_string_pretty(&status)? + "\n"
    } else {
        status.table()
    };
    // A closed pipe (`xgate status | head`) is not an error worth a panic.
    match std::io::stdout().lock().write_all(text.as_bytes()) {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => Err(e).context("writing status"),
        _ => Ok(()),
    }
}
