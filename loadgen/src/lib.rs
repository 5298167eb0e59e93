//! The crate's documentation is its README (modes, checks, error kinds, the open loop's
//! coordinated-omission correction, the JSON schema), included here so the two cannot drift.
#![doc = include_str!("../README.md")]

pub mod cli;
pub mod compare;
pub mod report;
pub mod request;
pub mod response;
pub mod scenario;
pub mod schedule;
mod sys;
pub mod tls;
mod worker;

use std::io::{IsTerminal, Write};
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

use thiserror::Error;

pub use report::{ErrorCounts, ErrorKind, Report, Stats};
pub use response::{BodyCheck, Expect};
pub use scenario::{Scenario, ScenarioError, Stop, Target};

use worker::{Plan, Progress, Worker};

/// Why a run could not be made (request failures are not errors: they are in the report).
#[derive(Debug, Error)]
pub enum Error {
    #[error(transparent)]
    Scenario(#[from] ScenarioError),
    /// A keep-alive run could not open its connections before starting.
    #[error("cannot connect to {addr}")]
    Connect {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("{call} failed")]
    Os {
        call: &'static str,
        source: std::io::Error,
    },
    #[error("cannot pin thread {thread} to CPU {cpu}")]
    Pin {
        thread: usize,
        cpu: usize,
        source: std::io::Error,
    },
    #[error("load thread {0} panicked")]
    Panicked(usize),
    #[error(transparent)]
    Tls(#[from] tls::TlsError),
}

impl Error {
    fn os(call: &'static str, source: std::io::Error) -> Error {
        Error::Os { call, source }
    }
}

/// Runs `scenario` and reports what it measured.
///
/// The connections are split over the threads (the first ones get one more when they do not
/// divide); in the open loop each thread takes every `threads`-th request of one common
/// timetable. Keep-alive connections are all opened before the clock starts. With
/// `scenario.progress`, a line on stderr shows the counts once a second.
pub fn run(scenario: &Scenario) -> Result<Report, Error> {
    scenario.validate()?;
    // Many connections need many descriptors; a failure here shows up as connect errors.
    let _ = sys::raise_open_files_limit();
    let plan = Arc::new(Plan::new(scenario)?);
    let threads = scenario.threads;
    let (ready_tx, ready_rx) = mpsc::channel::<(usize, Result<(), Error>)>();
    let (done_tx, done_rx) = mpsc::channel::<(usize, Result<Stats, Error>)>();
    let mut starts = Vec::with_capacity(threads);
    let mut handles = Vec::with_capacity(threads);
    let mut progress = Vec::with_capacity(threads);
    for t in 0..threads {
        let connections =
            scenario.connections / threads + usize::from(t < scenario.connections % threads);
        let cpu = (!scenario.cpus.is_empty()).then(|| scenario.cpus[t % scenario.cpus.len()]);
        let (start_tx, start_rx) = mpsc::channel::<Option<u64>>();
        starts.push(start_tx);
        let p = Arc::new(Progress::default());
        progress.push(Arc::clone(&p));
        let plan = Arc::clone(&plan);
        let ready_tx = ready_tx.clone();
        let done_tx = done_tx.clone();
        let handle = std::thread::Builder::new()
            .name(format!("loadgen-{t}"))
            .spawn(move || {
                let setup = (|| {
                    if let Some(cpu) = cpu {
                        sys::pin_to_cpu(cpu).map_err(|source| Error::Pin {
                            thread: t,
                            cpu,
                            source,
                        })?;
                    }
                    let mut w = Worker::new(plan, p, connections)?;
                    w.connect_all()?;
                    Ok(w)
                })();
                let worker = match setup {
                    Ok(w) => {
                        let _ = ready_tx.send((t, Ok(())));
                        w
                    }
                    Err(e) => {
                        let _ = ready_tx.send((t, Err(e)));
                        return;
                    }
                };
                if let Ok(Some(start)) = start_rx.recv() {
                    let _ = done_tx.send((t, worker.run(start, t)));
                }
            })
            .map_err(|e| Error::os("spawning a thread", e))?;
        handles.push(handle);
    }
    drop(ready_tx);
    drop(done_tx);

    let mut setup_error = None;
    for _ in 0..threads {
        match ready_rx.recv() {
            Ok((_, Ok(()))) => {}
            Ok((_, Err(e))) => {
                setup_error.get_or_insert(e);
            }
            Err(_) => {
                setup_error.get_or_insert(Error::Panicked(0));
                break;
            }
        }
    }
    if let Some(e) = setup_error {
        for s in &starts {
            let _ = s.send(None);
        }
        for h in handles {
            let _ = h.join();
        }
        return Err(e);
    }

    // Every thread starts on the same tick, a little ahead so they are all waiting for it.
    let start = sys::now_ns() + 2_000_000;
    for s in &starts {
        let _ = s.send(Some(start));
    }
    let show = scenario.progress;
    let began = Instant::now();
    let mut line = ProgressLine::default();
    let mut merged = Stats::default();
    let mut first_error = None;
    let mut finished = 0;
    while finished < threads {
        match done_rx.recv_timeout(Duration::from_secs(1)) {
            Ok((_, result)) => {
                finished += 1;
                match result {
                    Ok(stats) => merged.merge(&stats),
                    Err(e) => {
                        first_error.get_or_insert(e);
                    }
                }
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {
                if show {
                    line.show(&progress, began.elapsed());
                }
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => break,
        }
    }
    line.finish();
    for (t, h) in handles.into_iter().enumerate() {
        if h.join().is_err() {
            first_error.get_or_insert(Error::Panicked(t));
        }
    }
    if let Some(e) = first_error {
        return Err(e);
    }
    if finished < threads {
        return Err(Error::Panicked(finished));
    }

    let measure_start = start + plan_warmup_ns(scenario);
    let planned_end = match scenario.stop {
        Stop::Duration(d) => measure_start + u64::try_from(d.as_nanos()).unwrap_or(u64::MAX),
        Stop::Requests(_) => measure_start,
    };
    let end = planned_end.max(merged.last_outcome_ns);
    let elapsed = Duration::from_nanos(end.saturating_sub(measure_start));
    Ok(Report::new(scenario, merged, elapsed))
}

fn plan_warmup_ns(s: &Scenario) -> u64 {
    u64::try_from(s.warmup.as_nanos()).unwrap_or(u64::MAX)
}

/// Whether stderr should get the progress line without being asked.
pub fn stderr_is_terminal() -> bool {
    std::io::stderr().is_terminal()
}

#[derive(Default)]
struct ProgressLine {
    shown: bool,
    last_ok: u64,
}

impl ProgressLine {
    fn show(&mut self, progress: &[Arc<Progress>], elapsed: Duration) {
        let ok: u64 = progress.iter().map(|p| p.ok.load(Ordering::Relaxed)).sum();
        let failed: u64 = progress
            .iter()
            .map(|p| p.failed.load(Ordering::Relaxed))
            .sum();
        let text = format!(
            "loadgen: {:.0} s  {} ok  {} failed  {} req/s in the last second",
            elapsed.as_secs_f64(),
            report::group(ok),
            report::group(failed),
            report::group(ok.saturating_sub(self.last_ok)),
        );
        let mut err = std::io::stderr().lock();
        // Padded so a shorter line covers a longer one; no terminal escapes (it may be a log).
        let _ = write!(err, "\r{text:<78}");
        let _ = err.flush();
        self.last_ok = ok;
        self.shown = true;
    }

    fn finish(&self) {
        if self.shown {
            eprintln!();
        }
    }
}
