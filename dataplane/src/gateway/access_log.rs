//! The access log's writer: one thread that takes the records every serving thread collected
//! (`xgate_core::access`), formats them and appends them to the log file, so that no poller
//! and no kernel-path thread ever waits on the disk.
//!
//! Each serving thread owns an [`AccessLink`]: at its publish points (a few times a second,
//! and before a poller sleeps) it moves its sink's records into the link's bounded buffer
//! under a `try_lock`: if the writer holds the lock at that moment (for the few instructions of
//! a swap) the records wait for the next publish, and what does not fit in the buffer is
//! dropped and counted. The writer swaps each buffer for an empty one, formats the records
//! into one byte buffer and writes it with one `write` per round. A stalled disk stalls only
//! the writer; the links fill up and further records are counted as dropped. Memory is bounded
//! by the links' capacities and the writer's buffers, allocated once.
//!
//! SIGUSR1 asks for the file to be reopened (after logrotate has renamed it); the next round
//! opens the path again (created if missing, mode 0640) and writes there.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration as StdDuration, SystemTime, UNIX_EPOCH};

use crate::access::{write_line, AccessRecord, AccessSink, LogFormat, WallAnchor};
use crate::logging::RateLimiter;
use crate::time::Instant;

/// How often the writer collects the links' records.
const ROUND: StdDuration = StdDuration::from_millis(100);
/// How long the gateway's exit waits for a writer stuck in a write.
pub const FINISH_WAIT: StdDuration = StdDuration::from_secs(2);

/// What the access log does, from the configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccessLogConfig {
    pub path: PathBuf,
    pub format: LogFormat,
    /// Records each serving thread holds between two collections (its sink, and its link);
    /// more in one collection period are dropped and counted.
    pub buffer_records: usize,
}

impl AccessLogConfig {
    pub const DEFAULT_BUFFER_RECORDS: usize = 16_384;
}

/// The writer's counters, read by the status page.
#[derive(Debug, Default)]
pub struct AccessLogStats {
    /// Lines written to the file.
    pub written: AtomicU64,
    /// Records lost: buffers full (the writer or the disk did not keep up) or a failed write.
    pub dropped: AtomicU64,
    /// Write or reopen failures.
    pub errors: AtomicU64,
    /// Reopens done (SIGUSR1).
    pub reopens: AtomicU64,
}

/// What one serving thread and the writer share.
#[derive(Debug)]
struct LinkShared {
    records: Mutex<Vec<AccessRecord>>,
    capacity: usize,
    /// The wall-clock time of an instant of the serving thread's clock: its records' times
    /// are placed relative to it.
    anchor: WallAnchor,
    /// Records the thread dropped (its sink full, or this buffer full).
    dropped: AtomicU64,
}

/// A serving thread's end of the hand-off to the writer.
#[derive(Debug)]
pub struct AccessLink {
    shared: Arc<LinkShared>,
    /// The sink's drop count already added to `shared.dropped`.
    sink_dropped_seen: u64,
}

impl AccessLink {
    /// Moves `sink`'s records to the writer without waiting: when the writer holds the buffer
    /// they stay in the sink for the next call; what the buffer has no room for is dropped
    /// and counted.
    pub fn hand_over(&mut self, sink: &mut AccessSink) {
        let newly_dropped = sink.dropped() - self.sink_dropped_seen;
        if newly_dropped > 0 {
            self.sink_dropped_seen = sink.dropped();
            self.shared
                .dropped
                .fetch_add(newly_dropped, Ordering::Relaxed);
        }
        if sink.is_empty() {
            return;
        }
        let Ok(mut buffer) = self.shared.records.try_lock() else {
            return;
        };
        let room = self.shared.capacity.saturating_sub(buffer.len());
        let n = room.min(sink.len());
        buffer.extend_from_slice(&sink.records()[..n]);
        drop(buffer);
        let lost = (sink.len() - n) as u64;
        if lost > 0 {
            self.shared.dropped.fetch_add(lost, Ordering::Relaxed);
        }
        sink.clear();
    }
}

/// The writer thread and what the main thread tells it.
pub struct AccessLogWriter {
    thread: Option<JoinHandle<()>>,
    stop: Arc<AtomicBool>,
    reopen: Arc<AtomicBool>,
    stats: Arc<AccessLogStats>,
    links: Vec<Arc<LinkShared>>,
}

/// Why the access log could not start.
#[derive(Debug, thiserror::Error)]
pub enum AccessLogError {
    #[error("opening the access log {path}: {source}")]
    Open { path: PathBuf, source: io::Error },
    #[error("starting the access log's writer thread: {0}")]
    Spawn(io::Error),
}

/// The Unix time now, in microseconds.
fn unix_micros() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_micros() as u64)
        .unwrap_or(0)
}

fn open_log(path: &Path) -> io::Result<File> {
    OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o640)
        .open(path)
}

/// Checks that the log at `path` can be opened for appending (creating it if missing), so a
/// bad path is refused before the gateway attaches anything.
pub fn check_path(path: &Path) -> Result<(), AccessLogError> {
    open_log(path)
        .map(drop)
        .map_err(|source| AccessLogError::Open {
            path: path.to_path_buf(),
            source,
        })
}

/// Links made before the writer starts: one per serving thread.
#[derive(Debug, Default)]
pub struct AccessLinks {
    links: Vec<Arc<LinkShared>>,
}

impl AccessLinks {
    /// A link for a thread whose clock reads `now` at this moment, buffering `capacity`
    /// records between two rounds of the writer.
    pub fn link(&mut self, now: Instant, capacity: usize) -> AccessLink {
        let shared = Arc::new(LinkShared {
            records: Mutex::new(Vec::with_capacity(capacity)),
            capacity,
            anchor: WallAnchor {
                instant: now,
                unix_micros: unix_micros(),
            },
            dropped: AtomicU64::new(0),
        });
        self.links.push(Arc::clone(&shared));
        AccessLink {
            shared,
            sink_dropped_seen: 0,
        }
    }
}

impl AccessLogWriter {
    /// Opens the log (so a bad path is the start's error) and starts the writer over `links`.
    pub fn start(config: &AccessLogConfig, links: AccessLinks) -> Result<Self, AccessLogError> {
        let file = open_log(&config.path).map_err(|source| AccessLogError::Open {
            path: config.path.clone(),
            source,
        })?;
        let stop = Arc::new(AtomicBool::new(false));
        let reopen = Arc::new(AtomicBool::new(false));
        let stats = Arc::new(AccessLogStats::default());
        let mut round = Round {
            path: config.path.clone(),
            format: config.format,
            file: Some(file),
            links: links.links.clone(),
            spare: Vec::with_capacity(config.buffer_records),
            batch: Vec::with_capacity(config.buffer_records),
            out: Vec::with_capacity(config.buffer_records * 160),
            stats: Arc::clone(&stats),
            reopen: Arc::clone(&reopen),
            warn: RateLimiter::new(1, crate::time::Duration::from_secs(10)),
            origin: std::time::Instant::now(),
        };
        let thread_stop = Arc::clone(&stop);
        let thread = std::thread::Builder::new()
            .name("xgate-accesslog".into())
            .spawn(move || {
                while !thread_stop.load(Ordering::Relaxed) {
                    std::thread::sleep(ROUND);
                    round.run();
                }
                // What the serving threads handed over before they stopped.
                round.run();
            })
            .map_err(AccessLogError::Spawn)?;
        Ok(AccessLogWriter {
            thread: Some(thread),
            stop,
            reopen,
            stats,
            links: links.links,
        })
    }

    /// Reopens the file at the next round (SIGUSR1, after logrotate renamed it).
    pub fn reopen(&self) {
        self.reopen.store(true, Ordering::Relaxed);
    }

    /// Lines written, records dropped (by the links and by failed writes), errors, reopens.
    pub fn counts(&self) -> (u64, u64, u64, u64) {
        let links: u64 = self
            .links
            .iter()
            .map(|l| l.dropped.load(Ordering::Relaxed))
            .sum();
        (
            self.stats.written.load(Ordering::Relaxed),
            self.stats.dropped.load(Ordering::Relaxed) + links,
            self.stats.errors.load(Ordering::Relaxed),
            self.stats.reopens.load(Ordering::Relaxed),
        )
    }

    /// Writes what the links hold and stops the thread. Call after the serving threads
    /// handed over their last records. A writer stuck in a write (a stalled disk, a full
    /// pipe) is given [`FINISH_WAIT`] and then left behind, so that the gateway can exit.
    pub fn finish(mut self) {
        self.stop.store(true, Ordering::Relaxed);
        let Some(t) = self.thread.take() else {
            return;
        };
        let deadline = std::time::Instant::now() + FINISH_WAIT;
        while !t.is_finished() && std::time::Instant::now() < deadline {
            std::thread::sleep(StdDuration::from_millis(10));
        }
        if t.is_finished() {
            let _ = t.join();
        } else {
            tracing::warn!(
                waited_ms = FINISH_WAIT.as_millis() as u64,
                "the access log's writer is stuck in a write; exiting without its last lines"
            );
        }
    }
}

impl Drop for AccessLogWriter {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// The writer thread's state.
struct Round {
    path: PathBuf,
    format: LogFormat,
    file: Option<File>,
    links: Vec<Arc<LinkShared>>,
    /// Swapped with each link's buffer: the buffers trade places and nothing is allocated.
    spare: Vec<AccessRecord>,
    /// One round's records from every link, with their wall time and link, to sort.
    batch: Vec<(u64, usize, AccessRecord)>,
    out: Vec<u8>,
    stats: Arc<AccessLogStats>,
    reopen: Arc<AtomicBool>,
    /// One warning per 10 s about failed writes, on `origin`'s clock.
    warn: RateLimiter,
    origin: std::time::Instant,
}

impl Round {
    fn run(&mut self) {
        if self.reopen.swap(false, Ordering::Relaxed) {
            self.reopen_file();
        }
        // Every thread's records of this round, in the order their requests came (the
        // threads' clocks differ: each record is placed by its own link's anchor).
        for (i, link) in self.links.iter().enumerate() {
            {
                let mut buffer = link.records.lock().unwrap_or_else(|e| e.into_inner());
                std::mem::swap(&mut *buffer, &mut self.spare);
            }
            self.batch.extend(
                self.spare
                    .iter()
                    .map(|r| (link.anchor.unix_micros_of(r.received), i, *r)),
            );
            self.spare.clear();
        }
        if self.batch.is_empty() {
            return;
        }
        self.batch.sort_by_key(|&(at, i, _)| (at, i));
        for (_, i, r) in &self.batch {
            write_line(r, &self.links[*i].anchor, self.format, &mut self.out);
        }
        let lines = self.batch.len() as u64;
        self.batch.clear();
        let result = match self.file.as_mut() {
            Some(f) => f.write_all(&self.out),
            None => Err(io::Error::other("the log file is not open")),
        };
        self.out.clear();
        match result {
            Ok(()) => {
                self.stats.written.fetch_add(lines, Ordering::Relaxed);
            }
            Err(e) => {
                self.stats.dropped.fetch_add(lines, Ordering::Relaxed);
                self.stats.errors.fetch_add(1, Ordering::Relaxed);
                let now = Instant::from_micros(self.origin.elapsed().as_micros() as u64);
                if let Some(suppressed) = self.warn.allow(now) {
                    tracing::warn!(path = %self.path.display(), error = %e, lines, suppressed, "access log write failed; its lines are dropped");
                }
            }
        }
    }

    fn reopen_file(&mut self) {
        match open_log(&self.path) {
            Ok(f) => {
                self.file = Some(f);
                self.stats.reopens.fetch_add(1, Ordering::Relaxed);
                tracing::info!(path = %self.path.display(), "access log reopened");
            }
            Err(e) => {
                // Keep writing to the old file rather than lose lines.
                self.stats.errors.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(path = %self.path.display(), error = %e, "access log reopen failed; still writing to the file open before");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::access::PathKind;

    fn record(status: u16) -> AccessRecord {
        let mut r = AccessRecord::default();
        r.set_request_line(b"GET /x HTTP/1.1\r\n");
        r.status = status;
        r.completed = true;
        r.path = PathKind::Kernel;
        r
    }

    fn temp_path(name: &str) -> PathBuf {
        let dir =
            std::env::temp_dir().join(format!("xgate-accesslog-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir.join("access.log")
    }

    #[test]
    fn a_full_link_drops_and_counts_and_the_writer_empties_it() {
        let mut links = AccessLinks::default();
        let mut link = links.link(Instant::ZERO, 2);
        let mut sink = AccessSink::with_capacity(3);
        for s in [200, 201, 202, 203] {
            sink.push(record(s));
        }
        link.hand_over(&mut sink);
        assert!(sink.is_empty());
        // One dropped by the sink (capacity 3), one by the link (capacity 2).
        assert_eq!(link.shared.dropped.load(Ordering::Relaxed), 2);
        let path = temp_path("full");
        let config = AccessLogConfig {
            path: path.clone(),
            format: LogFormat::Text,
            buffer_records: 2,
        };
        let writer = AccessLogWriter::start(&config, links).unwrap();
        let deadline = std::time::Instant::now() + StdDuration::from_secs(5);
        while writer.counts().0 < 2 && std::time::Instant::now() < deadline {
            std::thread::sleep(StdDuration::from_millis(20));
        }
        assert_eq!(writer.counts(), (2, 2, 0, 0));
        let text = std::fs::read_to_string(&path).unwrap();
        let statuses: Vec<&str> = text.lines().map(|l| l.split(' ').nth(5).unwrap()).collect();
        assert_eq!(statuses, ["200", "201"]);
        writer.finish();
        let _ = std::fs::remove_dir_all(path.parent().unwrap());
    }

    #[test]
    fn a_reopen_writes_to_a_new_file_at_the_same_path() {
        let mut links = AccessLinks::default();
        let mut link = links.link(Instant::ZERO, 16);
        let path = temp_path("reopen");
        let config = AccessLogConfig {
            path: path.clone(),
            format: LogFormat::Json,
            buffer_records: 16,
        };
        let writer = AccessLogWriter::start(&config, links).unwrap();
        let wait_for = |n: u64| {
            let deadline = std::time::Instant::now() + StdDuration::from_secs(5);
            while writer.counts().0 < n && std::time::Instant::now() < deadline {
                std::thread::sleep(StdDuration::from_millis(20));
            }
        };
        let mut sink = AccessSink::with_capacity(4);
        sink.push(record(200));
        link.hand_over(&mut sink);
        wait_for(1);
        let rotated = path.with_extension("log.1");
        std::fs::rename(&path, &rotated).unwrap();
        writer.reopen();
        std::thread::sleep(StdDuration::from_millis(250));
        sink.push(record(404));
        link.hand_over(&mut sink);
        wait_for(2);
        writer.finish();
        let old = std::fs::read_to_string(&rotated).unwrap();
        let new = std::fs::read_to_string(&path).unwrap();
        assert_eq!(old.lines().count(), 1, "{old}");
        assert!(old.contains("\"status\":200"));
        assert_eq!(new.lines().count(), 1, "{new}");
        assert!(new.contains("\"status\":404"));
        let _ = std::fs::remove_dir_all(path.parent().unwrap());
    }

    #[test]
    fn a_round_writes_every_threads_records_in_the_order_their_requests_came() {
        // Two threads whose clocks started 5 s apart: their instants differ, their anchors
        // place them on one wall clock.
        let mut links = AccessLinks::default();
        let mut early = links.link(Instant::from_secs(5), 8);
        let mut late = links.link(Instant::ZERO, 8);
        let at = |clock_secs: u64, millis: u64, status: u16| {
            let mut r = record(status);
            r.received = Instant::from_micros(clock_secs * 1_000_000 + millis * 1000);
            r
        };
        let mut sink = AccessSink::with_capacity(8);
        sink.push(at(5, 10, 201)); // 10 ms after the anchors
        sink.push(at(5, 30, 203));
        early.hand_over(&mut sink);
        sink.push(at(0, 20, 202));
        sink.push(at(0, 40, 204));
        late.hand_over(&mut sink);
        let path = temp_path("order");
        let config = AccessLogConfig {
            path: path.clone(),
            format: LogFormat::Text,
            buffer_records: 8,
        };
        let writer = AccessLogWriter::start(&config, links).unwrap();
        let deadline = std::time::Instant::now() + StdDuration::from_secs(5);
        while writer.counts().0 < 4 && std::time::Instant::now() < deadline {
            std::thread::sleep(StdDuration::from_millis(20));
        }
        writer.finish();
        let text = std::fs::read_to_string(&path).unwrap();
        let statuses: Vec<&str> = text.lines().map(|l| l.split(' ').nth(5).unwrap()).collect();
        assert_eq!(statuses, ["201", "202", "203", "204"], "{text}");
        let _ = std::fs::remove_dir_all(path.parent().unwrap());
    }

    #[test]
    fn a_log_that_cannot_be_opened_is_a_clear_error() {
        let config = AccessLogConfig {
            path: PathBuf::from("/proc/no/such/dir/access.log"),
            format: LogFormat::Text,
            buffer_records: 4,
        };
        let e = AccessLogWriter::start(&config, AccessLinks::default())
            .err()
            .expect("refused");
        assert!(
            e.to_string()
                .starts_with("opening the access log /proc/no/such/dir/access.log"),
            "{e}"
        );
    }
}
