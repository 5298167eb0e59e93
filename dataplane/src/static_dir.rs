//! Reads `[app] static_dir` into memory: the file-system half of the static files, kept out of
//! the sans-IO core. It runs only when a configuration is built (at start and at `xgate
//! reload`), never while serving; the core's [`StaticFiles`] turns what it read into routes.
//!
//! Policies (documented for operators in `docs/configuration.md`):
//! - every regular file under the directory, recursively, is a `GET`/`HEAD` route at
//!   `prefix/relative/path` (names encoded by [`encode_segment`]);
//! - a symlink is followed when it resolves to a regular file inside the directory; one that
//!   leads outside, dangles, or leads to a directory is refused; sockets, FIFOs and devices
//!   are refused;
//! - the total size and the number of files are bounded; any refusal fails the whole load,
//!   naming the file.

use std::fs;
use std::io::Read;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use xgate_core::app::{check_prefix, encode_segment, StaticError, StaticFiles, StaticLimits};

/// Reads every regular file under `dir` (see the module's policies) into routes under
/// `prefix` (`"/"`, or e.g. `"/static"`; a trailing `/` is ignored).
pub fn load_static_dir(
    dir: &Path,
    prefix: &str,
    limits: &StaticLimits,
) -> Result<StaticFiles, StaticError> {
    let prefix = check_prefix(prefix)?;
    let root = fs::canonicalize(dir).map_err(|e| read_error(dir, &e))?;
    let meta = fs::metadata(&root).map_err(|e| read_error(dir, &e))?;
    if !meta.is_dir() {
        return Err(StaticError::Read {
            path: dir.to_path_buf(),
            message: "not a directory".into(),
        });
    }
    let mut files = Vec::new();
    let mut bytes = 0u64;
    // (real directory, the path the operator knows it by, its URL path), depth first.
    let mut stack = vec![(root.clone(), dir.to_path_buf(), prefix.clone())];
    while let Some((real, shown, url)) = stack.pop() {
        let mut entries = fs::read_dir(&real)
            .and_then(|d| d.collect::<Result<Vec<_>, _>>())
            .map_err(|e| read_error(&shown, &e))?;
        entries.sort_by_key(|e| e.file_name());
        let mut subdirs = Vec::new();
        for entry in entries {
            let name = entry.file_name();
            let shown = shown.join(&name);
            let Some(name) = name.to_str() else {
                return Err(StaticError::BadName {
                    path: shown,
                    reason: "is not UTF-8",
                });
            };
            let segment = encode_segment(name).map_err(|reason| StaticError::BadName {
                path: shown.clone(),
                reason,
            })?;
            let url = format!("{url}/{segment}");
            let real_entry = real.join(name);
            let kind = entry.file_type().map_err(|e| read_error(&shown, &e))?;
            let target = if kind.is_symlink() {
                let target = fs::canonicalize(&real_entry).map_err(|e| read_error(&shown, &e))?;
                if !target.starts_with(&root) {
                    return Err(StaticError::SymlinkOutside {
                        path: shown,
                        target,
                    });
                }
                let meta = fs::metadata(&target).map_err(|e| read_error(&shown, &e))?;
                if meta.is_dir() {
                    return Err(StaticError::SymlinkToDirectory { path: shown });
                }
                if !meta.is_file() {
                    return Err(StaticError::NotRegular { path: shown });
                }
                target
            } else if kind.is_dir() {
                subdirs.push((real_entry, shown, url));
                continue;
            } else if kind.is_file() {
                real_entry
            } else {
                // Not even opened: opening a device or a FIFO can block or act.
                return Err(StaticError::NotRegular { path: shown });
            };
            if files.len() >= limits.max_files {
                return Err(StaticError::TooManyFiles {
                    path: shown,
                    limit: limits.max_files,
                });
            }
            let budget = limits.max_bytes - bytes;
            let body = read_regular(&target, &shown, budget, limits.max_bytes)?;
            bytes += body.len() as u64;
            files.push((url, name.to_string(), body));
        }
        // Popped in name order.
        stack.extend(subdirs.into_iter().rev());
    }
    Ok(StaticFiles::from_files(files, bytes))
}

fn read_error(path: &Path, e: &std::io::Error) -> StaticError {
    StaticError::Read {
        path: path.to_path_buf(),
        message: e.to_string(),
    }
}

/// Reads a regular file of at most `budget` bytes. Opened without following a symlink and
/// without blocking (a FIFO swapped in after the directory was listed is refused, not waited
/// on), and checked on the open file, so what is read is what was checked.
fn read_regular(
    path: &Path,
    shown: &Path,
    budget: u64,
    limit: u64,
) -> Result<Vec<u8>, StaticError> {
    let file = fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_NOCTTY)
        .open(path)
        .map_err(|e| read_error(shown, &e))?;
    let meta = file.metadata().map_err(|e| read_error(shown, &e))?;
    if !meta.is_file() {
        return Err(StaticError::NotRegular {
            path: shown.to_path_buf(),
        });
    }
    let too_many = || StaticError::TooManyBytes {
        path: shown.to_path_buf(),
        limit,
    };
    if meta.len() > budget {
        return Err(too_many());
    }
    let mut body = Vec::with_capacity(meta.len() as usize);
    // A file growing while read is bounded all the same.
    file.take(budget.saturating_add(1))
        .read_to_end(&mut body)
        .map_err(|e| read_error(shown, &e))?;
    if body.len() as u64 > budget {
        return Err(too_many());
    }
    Ok(body)
}

#[cfg(test)]
#[path = "static_dir_tests.rs"]
mod tests;
