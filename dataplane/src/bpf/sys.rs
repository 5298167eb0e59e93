//! The few system calls the loader needs that libbpf-rs does not wrap. Every `unsafe` block of
//! the `bpf` module is here.

use std::ffi::CString;
use std::fs::{self, File};
use std::io;
use std::mem::MaybeUninit;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use libbpf_rs::libbpf_sys;

use super::{AttachedMode, Result, SteeringError};

const BPF_FS_MAGIC: i64 = 0xcafe_4a11;
const CGROUP2_SUPER_MAGIC: i64 = 0x6367_7270;
const XDP_FLAGS_SKB_MODE: u32 = 1 << 1;
const XDP_FLAGS_DRV_MODE: u32 = 1 << 2;

/// Interface index of `name` in the calling thread's network namespace.
pub(super) fn if_nametoindex(name: &str) -> io::Result<u32> {
    let c = CString::new(name).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
    // SAFETY: `c` is a valid NUL-terminated string that outlives the call.
    let idx = unsafe { libc::if_nametoindex(c.as_ptr()) };
    if idx == 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(idx)
    }
}

fn path_cstring(path: &Path) -> io::Result<CString> {
    CString::new(path.as_os_str().as_bytes())
        .map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))
}

fn fs_magic(path: &Path) -> io::Result<i64> {
    let c = path_cstring(path)?;
    let mut st = MaybeUninit::<libc::statfs>::zeroed();
    // SAFETY: `c` is NUL-terminated; `st` is a writable statfs the call fills on success.
    let rc = unsafe { libc::statfs(c.as_ptr(), st.as_mut_ptr()) };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: statfs returned 0, so it initialised `st`.
    let st = unsafe { st.assume_init() };
    #[allow(clippy::unnecessary_cast)] // f_type's width differs between libcs
    Ok(st.f_type as i64)
}

fn mount(fstype: &str, target: &Path) -> io::Result<()> {
    let src = CString::new(fstype).expect("no NUL");
    let tgt = path_cstring(target)?;
    // SAFETY: all pointers are valid NUL-terminated strings that outlive the call; no data.
    let rc = unsafe {
        libc::mount(
            src.as_ptr(),
            tgt.as_ptr(),
            src.as_ptr(),
            0,
            std::ptr::null(),
        )
    };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Makes sure the mount point that holds `pin_root` (`/sys/fs/bpf`) is a bpffs, mounting one
/// when nothing is mounted there.
pub(super) fn ensure_bpffs(pin_root: &Path) -> Result<()> {
    let mnt = pin_root.parent().unwrap_or(pin_root);
    let magic = fs_magic(mnt).map_err(SteeringError::io("statfs", mnt))?;
    if magic == BPF_FS_MAGIC {
        return Ok(());
    }
    mount("bpf", mnt).map_err(SteeringError::io("mounting bpffs on", mnt))
}

/// Whether `path` is on a cgroup v2 file system.
pub(super) fn is_cgroup2(path: &Path) -> Result<bool> {
    Ok(fs_magic(path).map_err(SteeringError::io("statfs", path))? == CGROUP2_SUPER_MAGIC)
}

/// The root of a mounted cgroup v2 hierarchy, mounting one at `/run/xgate/cgroup2` when the
/// host has none (cgroup v1-only hosts).
pub fn cgroup2_root() -> Result<PathBuf> {
    let mounts = Path::new("/proc/self/mounts");
    let text = fs::read_to_string(mounts).map_err(SteeringError::io("reading", mounts))?;
    for line in text.lines() {
        let mut f = line.split_whitespace();
        let (_, Some(dir), Some("cgroup2")) = (f.next(), f.next(), f.next()) else {
            continue;
        };
        return Ok(PathBuf::from(dir));
    }
    let dir = PathBuf::from(super::LOCK_DIR).join("cgroup2");
    fs::create_dir_all(&dir).map_err(SteeringError::io("creating", &dir))?;
    mount("cgroup2", &dir).map_err(SteeringError::io("mounting cgroup2 on", &dir))?;
    Ok(dir)
}

/// Non-blocking exclusive `flock`; `Ok(false)` when someone else holds it.
pub(super) fn try_flock(file: &File) -> io::Result<bool> {
    // SAFETY: the fd is valid for the duration of the call (borrowed from `file`).
    let rc = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
    if rc == 0 {
        return Ok(true);
    }
    let e = io::Error::last_os_error();
    if e.raw_os_error() == Some(libc::EWOULDBLOCK) {
        Ok(false)
    } else {
        Err(e)
    }
}

/// Attaches an XDP program to `ifindex` through a bpf_link in the given mode. libbpf-rs's
/// `attach_xdp` cannot pass the mode flags, so this calls `bpf_link_create` itself. Closing the
/// returned fd detaches the program.
pub(super) fn xdp_link_create(
    prog: BorrowedFd<'_>,
    ifindex: u32,
    mode: AttachedMode,
) -> io::Result<OwnedFd> {
    let flags = match mode {
        AttachedMode::Native => XDP_FLAGS_DRV_MODE,
        AttachedMode::Generic => XDP_FLAGS_SKB_MODE,
    };
    let opts = libbpf_sys::bpf_link_create_opts {
        sz: std::mem::size_of::<libbpf_sys::bpf_link_create_opts>() as _,
        flags,
        ..Default::default()
    };
    // SAFETY: `prog` is a valid program fd for the call; `opts` is a properly sized,
    // initialised options struct that outlives the call.
    let fd = unsafe {
        libbpf_sys::bpf_link_create(prog.as_raw_fd(), ifindex as i32, libbpf_sys::BPF_XDP, &opts)
    };
    if fd < 0 {
        return Err(io::Error::from_raw_os_error(-fd));
    }
    // SAFETY: bpf_link_create returned a new fd that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Runs the XDP program once on `frame` with BPF_PROG_TEST_RUN (no packet is sent; a redirect
/// is only reported). Socket lookups see the calling thread's network namespace.
pub(super) fn xdp_test_run(prog: BorrowedFd<'_>, frame: &[u8]) -> io::Result<u32> {
    let mut opts = libbpf_sys::bpf_test_run_opts {
        sz: std::mem::size_of::<libbpf_sys::bpf_test_run_opts>() as _,
        data_in: frame.as_ptr().cast(),
        data_size_in: u32::try_from(frame.len())
            .map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?,
        repeat: 1,
        ..Default::default()
    };
    // SAFETY: `prog` is a valid program fd; `opts` is sized and initialised, `data_in` points
    // at `frame.len()` readable bytes that outlive the call, and no output buffer is given.
    let rc = unsafe { libbpf_sys::bpf_prog_test_run_opts(prog.as_raw_fd(), &mut opts) };
    if rc < 0 {
        return Err(io::Error::from_raw_os_error(-rc));
    }
    Ok(opts.retval)
}
