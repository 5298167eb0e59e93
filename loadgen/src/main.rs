//! `loadgen`: parses the command line, calls the library ([`loadgen::run`]) and writes the
//! report; errors get context here and are printed by anyhow.

use std::io::Write;
use std::process::ExitCode;

use anyhow::Context;
use clap::Parser;

use loadgen::cli::{Cli, Command, RunArgs};

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Run(args) => run(&args),
        Command::Compare(args) => compare(&args),
        Command::Paths(args) => paths(&args),
        Command::Flood(args) => flood(&args),
        Command::Scaling(args) => scaling(&args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("loadgen: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(args: &RunArgs) -> anyhow::Result<()> {
    let scenario = args.scenario(loadgen::stderr_is_terminal())?;
    let report = loadgen::run(&scenario)
        .with_context(|| format!("loadgen run against {}", scenario.target.addr))?;
    let json_to_stdout = args.json.as_deref() == Some("-");
    if json_to_stdout {
        eprintln!("{}", report.summary());
        let mut out = std::io::stdout().lock();
        serde_json::to_writer_pretty(&mut out, &report).context("writing the JSON report")?;
        writeln!(out).context("writing the JSON report")?;
    } else {
        println!("{}", report.summary());
        if let Some(path) = &args.json {
            let json = serde_json::to_vec_pretty(&report).context("serialising the report")?;
            std::fs::write(path, json).with_context(|| format!("writing {path}"))?;
        }
    }
    Ok(())
}

fn compare(args: &loadgen::compare::CompareArgs) -> anyhow::Result<()> {
    if loadgen::compare::wants_https(args) {
        let (record, files) =
            loadgen::compare::https::compare_https(args).context("loadgen compare (HTTPS)")?;
        println!("{}", loadgen::compare::https::markdown(&record));
        for f in files {
            println!("wrote {}", f.display());
        }
        return Ok(());
    }
    let done = loadgen::compare::compare(args).context("loadgen compare")?;
    for (record, files) in done {
        println!("{}", record.markdown());
        for f in files {
            println!("wrote {}", f.display());
        }
    }
    Ok(())
}

fn paths(args: &loadgen::compare::paths::PathsArgs) -> anyhow::Result<()> {
    let (record, files) = loadgen::compare::paths::run(args).context("loadgen paths")?;
    println!("{}", loadgen::compare::paths_report::markdown(&record));
    for f in files {
        println!("wrote {}", f.display());
    }
    Ok(())
}

fn flood(args: &loadgen::compare::flood::FloodArgs) -> anyhow::Result<()> {
    let (record, files) = loadgen::compare::flood::run(args).context("loadgen flood")?;
    println!("{}", loadgen::compare::flood::markdown(&record));
    for f in files {
        println!("wrote {}", f.display());
    }
    Ok(())
}

fn scaling(args: &loadgen::compare::scaling::ScalingArgs) -> anyhow::Result<()> {
    let (record, files) = loadgen::compare::scaling::run(args).context("loadgen scaling")?;
    println!("{}", loadgen::compare::scaling_report::markdown(&record));
    for f in files {
        println!("wrote {}", f.display());
    }
    Ok(())
}
