//! Files from a directory (`[app] static_dir`), read into memory and serialised as static
//! responses, so that answering one costs a copy like any other static route.
//!
//! The file-system walk lives outside the sans-IO core, in the gateway's loader
//! (`dataplane::static_dir`), which runs only when a configuration is built (at start and at
//! `xgate reload`) and hands the files over with [`StaticFiles::from_files`]: this module and
//! [`App`](super::App) see bytes only, and nothing is looked up on disk while serving. The responses are shared (`Arc`) by every
//! `App` built from the same [`AppConfig`](super::AppConfig), so the pollers and the kernel
//! path hold one copy of the files between them.
//!
//! Policies (documented for operators in `docs/configuration.md`):
//! - every regular file under the directory, recursively, is a `GET`/`HEAD` route at
//!   `prefix/relative/path`; a directory holding `index.html` is also answered at `dir/`, and
//!   `dir` (no slash) redirects there with 301;
//! - name bytes outside RFC 3986 `pchar` are percent-encoded (uppercase hex) when every client
//!   encodes them the same way (space, `"`, `#`, `%`, `<`, `>`, `?`, `` ` ``, `{`, `}` and the
//!   bytes of non-ASCII UTF-8), and refused otherwise: control characters, `\ [ ] ^ |` (browsers
//!   send them raw, other clients encoded), names that are not UTF-8;
//! - a symlink is followed when it resolves to a regular file inside the directory; one that
//!   leads outside, dangles, or leads to a directory is refused; sockets, FIFOs and devices
//!   are refused;
//! - the total size and the number of files are bounded; any refusal fails the whole load,
//!   naming the file.

use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;

use thiserror::Error;

use super::{serialise, Prepared, TEXT_PLAIN};

/// Default bound on the bytes of all files together.
pub const DEFAULT_STATIC_MAX_BYTES: u64 = 256 << 20;
/// Default bound on the number of files.
pub const DEFAULT_STATIC_MAX_FILES: usize = 65_536;

/// Bounds of one load.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StaticLimits {
    /// Bytes of file contents, all files together.
    pub max_bytes: u64,
    /// Regular files (symlinks to files count as files).
    pub max_files: usize,
}

impl Default for StaticLimits {
    fn default() -> Self {
        StaticLimits {
            max_bytes: DEFAULT_STATIC_MAX_BYTES,
            max_files: DEFAULT_STATIC_MAX_FILES,
        }
    }
}

/// Why a directory could not be loaded; every variant names the file.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum StaticError {
    #[error("{prefix:?} must start with '/' and be path characters (RFC 3986 pchar, no '%') without empty, '.' or '..' segments")]
    BadPrefix { prefix: String },
    #[error("{path}: {message}")]
    Read { path: PathBuf, message: String },
    #[error("{path}: the name {reason}")]
    BadName { path: PathBuf, reason: &'static str },
    #[error("{path}: symlink to {target}, outside the directory (not followed)")]
    SymlinkOutside { path: PathBuf, target: PathBuf },
    #[error("{path}: symlink to a directory (not followed: link the files, or point static_dir at the real tree)")]
    SymlinkToDirectory { path: PathBuf },
    #[error("{path}: not a regular file or directory")]
    NotRegular { path: PathBuf },
    #[error("{path}: more than {limit} files")]
    TooManyFiles { path: PathBuf, limit: usize },
    #[error("{path}: the files add up to more than {limit} bytes")]
    TooManyBytes { path: PathBuf, limit: u64 },
}

/// One route made from a file: its request path (percent-encoded) and its answer.
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct FileRoute {
    pub(crate) path: Box<[u8]>,
    pub(crate) response: Prepared,
}

/// The routes of a loaded directory, sorted by path; cheap to clone (shared).
#[derive(Clone, PartialEq, Eq)]
pub struct StaticFiles {
    routes: Arc<[FileRoute]>,
    files: usize,
    bytes: u64,
}

impl Default for StaticFiles {
    fn default() -> Self {
        StaticFiles {
            routes: Arc::from(Vec::new()),
            files: 0,
            bytes: 0,
        }
    }
}

impl fmt::Debug for StaticFiles {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StaticFiles")
            .field("files", &self.files)
            .field("bytes", &self.bytes)
            .field("routes", &self.routes.len())
            .finish()
    }
}

impl StaticFiles {
    /// Routes from contents in memory: `(relative path, body)` pairs with `/`-separated,
    /// already valid (see [`encode_segment`]) names; for tests and benchmarks.
    pub fn from_memory(
        prefix: &str,
        entries: impl IntoIterator<Item = (String, Vec<u8>)>,
    ) -> Result<Self, StaticError> {
        let prefix = check_prefix(prefix)?;
        let mut files = Vec::new();
        let mut bytes = 0;
        for (rel, body) in entries {
            let mut url = prefix.clone();
            for segment in rel.split('/') {
                let encoded = encode_segment(segment).map_err(|reason| StaticError::BadName {
                    path: rel.clone().into(),
                    reason,
                })?;
                url.push('/');
                url.push_str(&encoded);
            }
            let name = rel.rsplit('/').next().unwrap_or_default().to_string();
            bytes += body.len() as u64;
            files.push((url, name, body));
        }
        Ok(Self::build(files, bytes))
    }

    /// Routes from files already read: `(url, file name, body)` with `url` built from
    /// [`check_prefix`] and [`encode_segment`], and `bytes` their bodies' total. This is how
    /// the gateway's directory loader (`dataplane::static_dir`), which does the file-system
    /// reading, hands its files over.
    pub fn from_files(files: Vec<(String, String, Vec<u8>)>, bytes: u64) -> Self {
        Self::build(files, bytes)
    }

    fn build(files: Vec<(String, String, Vec<u8>)>, bytes: u64) -> Self {
        let count = files.len();
        let mut routes = Vec::with_capacity(count);
        for (url, name, body) in files {
            let response = serialise(200, &[("Content-Type", content_type(&name))], &body);
            drop(body);
            if name == "index.html" {
                // `dir/index.html` is also `dir/`; `dir` redirects to `dir/`.
                let dir = &url[..url.len() - "index.html".len()];
                routes.push(FileRoute {
                    path: dir.as_bytes().into(),
                    response: response.clone(),
                });
                let bare = &dir[..dir.len() - 1];
                if !bare.is_empty() {
                    let body = format!("Moved to {dir}\n");
                    routes.push(FileRoute {
                        path: bare.as_bytes().into(),
                        response: serialise(301, &[("Location", dir), TEXT_PLAIN], body.as_bytes()),
                    });
                }
            }
            routes.push(FileRoute {
                path: url.into_bytes().into(),
                response,
            });
        }
        routes.sort_by(|a, b| a.path.cmp(&b.path));
        // A name can only be produced once (names in a directory are unique and encoding is
        // one-to-one), but an `index.html` redirect could meet a file of the same path only
        // if a directory and a file shared a name: keep the first.
        routes.dedup_by(|b, a| a.path == b.path);
        StaticFiles {
            routes: routes.into(),
            files: count,
            bytes,
        }
    }

    /// Files loaded.
    pub fn files(&self) -> usize {
        self.files
    }

    /// Bytes of their contents.
    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    /// Request paths answered (files, `dir/` for an `index.html`, and the `dir` redirects),
    /// sorted.
    pub fn paths(&self) -> impl Iterator<Item = &[u8]> {
        self.routes.iter().map(|r| &*r.path)
    }

    pub(crate) fn routes(&self) -> &[FileRoute] {
        &self.routes
    }
}

/// RFC 3986 `pchar` without `pct-encoded`: what is kept as is in a path segment.
fn is_pchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"-._~!$&'()*+,;=:@".contains(&b)
}

/// The URL form of one file name: `pchar` kept, bytes every client percent-encodes encoded,
/// anything else refused (with the reason).
pub fn encode_segment(name: &str) -> Result<String, &'static str> {
    if name.is_empty() || name == "." || name == ".." {
        return Err("is an empty, '.' or '..' segment");
    }
    let mut out = String::with_capacity(name.len());
    for &b in name.as_bytes() {
        if is_pchar(b) {
            out.push(char::from(b));
        } else if b >= 0x80 || b" \"#%<>?`{}".contains(&b) {
            const HEX: &[u8; 16] = b"0123456789ABCDEF";
            out.push('%');
            out.push(char::from(HEX[usize::from(b >> 4)]));
            out.push(char::from(HEX[usize::from(b & 15)]));
        } else if b < 0x20 || b == 0x7f {
            return Err("has control characters");
        } else if b == b'/' {
            return Err("has a '/'");
        } else {
            return Err("has one of \\ [ ] ^ | (clients disagree on encoding them)");
        }
    }
    Ok(out)
}

/// `static_prefix` without a trailing `/` (`"/"` gives `""`).
pub fn check_prefix(prefix: &str) -> Result<String, StaticError> {
    let bad = || StaticError::BadPrefix {
        prefix: prefix.to_string(),
    };
    let trimmed = prefix.strip_suffix('/').unwrap_or(prefix);
    if !prefix.starts_with('/') {
        return Err(bad());
    }
    if trimmed.is_empty() {
        return Ok(String::new());
    }
    for segment in trimmed[1..].split('/') {
        if segment.is_empty() || segment == "." || segment == ".." || !segment.bytes().all(is_pchar)
        {
            return Err(bad());
        }
    }
    Ok(trimmed.to_string())
}

/// Content types by file extension (ASCII case ignored), the common ones of nginx's
/// `mime.types`; text types say UTF-8.
const CONTENT_TYPES: &[(&str, &str)] = &[
    ("html", "text/html; charset=utf-8"),
    ("htm", "text/html; charset=utf-8"),
    ("css", "text/css; charset=utf-8"),
    ("js", "text/javascript; charset=utf-8"),
    ("mjs", "text/javascript; charset=utf-8"),
    ("txt", "text/plain; charset=utf-8"),
    ("md", "text/markdown; charset=utf-8"),
    ("csv", "text/csv; charset=utf-8"),
    ("xml", "text/xml; charset=utf-8"),
    ("json", "application/json"),
    ("map", "application/json"),
    ("webmanifest", "application/manifest+json"),
    ("rss", "application/rss+xml"),
    ("atom", "application/atom+xml"),
    ("svg", "image/svg+xml"),
    ("png", "image/png"),
    ("jpg", "image/jpeg"),
    ("jpeg", "image/jpeg"),
    ("gif", "image/gif"),
    ("webp", "image/webp"),
    ("avif", "image/avif"),
    ("bmp", "image/bmp"),
    ("ico", "image/x-icon"),
    ("tif", "image/tiff"),
    ("tiff", "image/tiff"),
    ("wasm", "application/wasm"),
    ("woff", "font/woff"),
    ("woff2", "font/woff2"),
    ("ttf", "font/ttf"),
    ("otf", "font/otf"),
    ("pdf", "application/pdf"),
    ("zip", "application/zip"),
    ("gz", "application/gzip"),
    ("tar", "application/x-tar"),
    ("mp3", "audio/mpeg"),
    ("ogg", "audio/ogg"),
    ("wav", "audio/wav"),
    ("mp4", "video/mp4"),
    ("webm", "video/webm"),
];

/// The `Content-Type` of a file name: by extension, else `application/octet-stream`.
pub fn content_type(name: &str) -> &'static str {
    let ext = match name.rsplit_once('.') {
        Some((stem, ext)) if !stem.is_empty() => ext,
        _ => return "application/octet-stream",
    };
    CONTENT_TYPES
        .iter()
        .find(|(e, _)| e.eq_ignore_ascii_case(ext))
        .map_or("application/octet-stream", |(_, t)| t)
}

#[cfg(test)]
#[path = "files_tests.rs"]
mod tests;
