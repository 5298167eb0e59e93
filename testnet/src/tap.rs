//! A TAP interface inside a network namespace, whose file descriptor this process holds.
//!
//! What the namespace sends on the interface (the kernel's replies, or frames an XDP program
//! or an AF_XDP socket transmits there) is read from the descriptor, one Ethernet frame per
//! read; a frame written into the descriptor arrives on the interface as if from a wire. So a
//! client in user space can be the other end of a link without a second kernel network stack
//! running anywhere: the lab in which only the server's own work is done by the kernel.
//!
//! The interface lives as long as the descriptor: dropping the [`Tap`] removes it. The
//! namespace it sits in is the caller's (e.g. a [`Topology`](crate::Topology)'s server side,
//! or one made with `ip netns add`).

use std::fs::{File, OpenOptions};
use std::io::{self, Read, Write};
use std::net::Ipv4Addr;
use std::os::fd::AsFd;
use std::os::unix::fs::OpenOptionsExt;
use std::time::Duration;

use crate::netns::NetnsGuard;
use crate::{run, sys, CommandError};

/// Why a TAP interface could not be made.
#[derive(Debug, thiserror::Error)]
pub enum TapError {
    #[error("{what}: {source}")]
    Io {
        what: &'static str,
        #[source]
        source: io::Error,
    },
    #[error(transparent)]
    Command(#[from] CommandError),
}

/// A TAP interface and its descriptor; see the module doc.
#[derive(Debug)]
pub struct Tap {
    pub ns: String,
    pub ifname: String,
    pub addr: Ipv4Addr,
    file: File,
}

impl Tap {
    /// Makes the TAP interface `ifname` in namespace `ns`, with `addr/prefix`, up. The
    /// descriptor is non-blocking: [`Tap::recv`] waits with a timeout.
    pub fn create(ns: &str, ifname: &str, addr: Ipv4Addr, prefix: u8) -> Result<Tap, TapError> {
        let io = |what| move |source| TapError::Io { what, source };
        let file = {
            // The interface is made in the namespace of the thread that asks for it.
            let _inside = NetnsGuard::enter(ns).map_err(io("entering the namespace"))?;
            let file = OpenOptions::new()
                .read(true)
                .write(true)
                .custom_flags(libc::O_NONBLOCK | libc::O_CLOEXEC)
                .open("/dev/net/tun")
                .map_err(io("opening /dev/net/tun"))?;
            sys::tun_set_tap(file.as_fd(), ifname).map_err(io("TUNSETIFF"))?;
            file
        };
        let cidr = format!("{addr}/{prefix}");
        run(&["ip", "-n", ns, "addr", "add", &cidr, "dev", ifname])?;
        run(&["ip", "-n", ns, "link", "set", ifname, "up"])?;
        Ok(Tap {
            ns: ns.to_string(),
            ifname: ifname.to_string(),
            addr,
            file,
        })
    }

    /// Hands one Ethernet frame to the interface, as if it came from the wire.
    pub fn send(&self, frame: &[u8]) -> io::Result<()> {
        let n = (&self.file).write(frame)?;
        if n != frame.len() {
            return Err(io::Error::new(
                io::ErrorKind::WriteZero,
                format!("wrote {n} of {} bytes", frame.len()),
            ));
        }
        Ok(())
    }

    /// The next frame the interface transmitted, waiting up to `timeout`; `None` if none came.
    pub fn recv(&self, buf: &mut [u8], timeout: Duration) -> io::Result<Option<usize>> {
        loop {
            match (&self.file).read(buf) {
                Ok(n) => return Ok(Some(n)),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    if !sys::wait_readable(self.file.as_fd(), timeout)? {
                        return Ok(None);
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
    }

    /// The interface's MAC address (the destination of the frames a client writes).
    pub fn mac(&self) -> Result<[u8; 6], CommandError> {
        crate::topology::mac_of(&self.ns, &self.ifname)
    }

    /// Receive Packet Steering for the interface's queue: the kernel's receive processing of
    /// what is written into the descriptor runs on these CPUs (a bit mask, e.g. `0x2` for CPU
    /// 1) instead of the writer's, so the server's core pays for its own receive.
    pub fn set_rps_cpus(&self, mask: u64) -> Result<(), CommandError> {
        // `ip netns exec` mounts the namespace's own /sys, where the interface is visible.
        let path = format!("/sys/class/net/{}/queues/rx-0/rps_cpus", self.ifname);
        let script = format!("echo {mask:x} > {path}");
        run(&["ip", "netns", "exec", &self.ns, "sh", "-c", &script])?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An ARP request for `target` from `sender` (MAC `sender_mac`), broadcast.
    fn arp_request(sender_mac: [u8; 6], sender: Ipv4Addr, target: Ipv4Addr) -> Vec<u8> {
        let mut f = Vec::with_capacity(42);
        f.extend_from_slice(&[0xff; 6]);
        f.extend_from_slice(&sender_mac);
        f.extend_from_slice(&[0x08, 0x06]); // ARP
        f.extend_from_slice(&[0, 1, 0x08, 0x00, 6, 4, 0, 1]); // Ethernet/IPv4, request
        f.extend_from_slice(&sender_mac);
        f.extend_from_slice(&sender.octets());
        f.extend_from_slice(&[0; 6]);
        f.extend_from_slice(&target.octets());
        f
    }

    #[test]
    fn a_frame_written_in_is_answered_out() {
        if !crate::is_root() {
            eprintln!("SKIPPED: needs root (network namespaces, /dev/net/tun)");
            return;
        }
        let ns = format!("tnt{}", std::process::id());
        run(&["ip", "netns", "add", &ns]).unwrap();
        struct Remove(String);
        impl Drop for Remove {
            fn drop(&mut self) {
                let _ = run(&["ip", "netns", "del", &self.0]);
            }
        }
        let _remove = Remove(ns.clone());

        let server = Ipv4Addr::new(10, 233, 0, 1);
        let client = Ipv4Addr::new(10, 233, 0, 2);
        let tap = Tap::create(&ns, "tnt0", server, 24).unwrap();
        tap.set_rps_cpus(1).unwrap();
        let tap_mac = tap.mac().unwrap();
        let client_mac = [0x02, 0, 0, 0, 0, 0x02];
        tap.send(&arp_request(client_mac, client, server)).unwrap();

        // The kernel may send other frames first (IPv6 router solicitations, ...).
        let mut buf = [0u8; 2048];
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        loop {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            let n = tap
                .recv(&mut buf, left)
                .unwrap()
                .expect("an ARP reply within 5 s");
            let f = &buf[..n];
            if n >= 42 && f[12..14] == [0x08, 0x06] && f[20..22] == [0, 2] {
                assert_eq!(&f[0..6], &client_mac, "to the client");
                assert_eq!(&f[6..12], &tap_mac, "from the TAP's MAC");
                assert_eq!(&f[28..32], &server.octets(), "the server's address answers");
                break;
            }
        }
        drop(tap);
        // The interface goes with the descriptor.
        let out = run(&["ip", "-n", &ns, "link", "show"]).unwrap();
        assert!(!String::from_utf8_lossy(&out.stdout).contains("tnt0"));
    }
}
