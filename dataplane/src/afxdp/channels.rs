//! How many RX queues an interface has (ETHTOOL_GCHANNELS).

use std::ffi::CString;
use std::io;
use std::os::fd::AsRawFd;

const SIOCETHTOOL: libc::c_ulong = 0x8946;
const ETHTOOL_GCHANNELS: u32 = 0x3c;

#[repr(C)]
#[derive(Default)]
struct EthtoolChannels {
    cmd: u32,
    max_rx: u32,
    max_tx: u32,
    max_other: u32,
    max_combined: u32,
    rx_count: u32,
    tx_count: u32,
    other_count: u32,
    combined_count: u32,
}

/// RX queues of `ifname` in the calling thread's network namespace: the channel count
/// (combined + rx-only), or 1 when the driver does not report channels.
pub fn rx_queue_count(ifname: &str) -> io::Result<u32> {
    let name = CString::new(ifname).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
    if name.as_bytes().len() >= libc::IFNAMSIZ {
        return Err(io::Error::from(io::ErrorKind::InvalidInput));
    }
    let mut ch = EthtoolChannels {
        cmd: ETHTOOL_GCHANNELS,
        ..Default::default()
    };
    let fd = crate::sys::socket::ioctl_socket()?;
    // SAFETY: an all-zero ifreq is a valid value (a C struct of arrays and a union of PODs).
    let mut ifr: libc::ifreq = unsafe { std::mem::zeroed() };
    for (dst, src) in ifr.ifr_name.iter_mut().zip(name.as_bytes()) {
        *dst = *src as libc::c_char;
    }
    ifr.ifr_ifru.ifru_data = (&mut ch as *mut EthtoolChannels).cast();
    // SAFETY: `fd` is our socket; `ifr` names the interface and points at `ch`, which lives
    // across the call and has the layout ETHTOOL_GCHANNELS writes.
    let rc = unsafe { libc::ioctl(fd.as_raw_fd(), SIOCETHTOOL as _, &mut ifr) };
    let err = io::Error::last_os_error();
    drop(fd); // after errno is read: close(2) may change it
    if rc < 0 {
        return match err.raw_os_error() {
            Some(libc::EOPNOTSUPP) => Ok(1),
            _ => Err(err),
        };
    }
    Ok((ch.combined_count + ch.rx_count).max(1))
}
