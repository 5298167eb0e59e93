//! Path MTU errors between the pollers of one interface.
//!
//! A NIC's RSS hashes an ICMP error by its IP addresses (there are no ports in it to hash),
//! so the "packet too big" about a connection can arrive on another RX queue than the
//! connection's segments; the XDP program can only redirect a frame to the AF_XDP socket of
//! the queue it came in on. The engine that receives it keeps the message
//! (`Engine::forward_foreign_pmtu`), its poller looks the flow's owner up in `user_flows` and
//! posts the message to that queue's [`PmtuInbox`], waking its poller; the owner's engine then
//! applies it. Rare and small (one ICMP error per path change), so a mutex is fine; the inbox
//! is bounded, and the flag spares the owner the lock on every loop round.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use crate::wire::PmtuMessage;

use super::Waker;

/// Messages one inbox holds between two rounds of its poller; more are dropped (counted by
/// the sender).
pub const INBOX_CAPACITY: usize = 64;

/// One poller's inbox of path MTU messages from the other pollers.
#[derive(Debug, Default)]
pub struct PmtuInbox {
    pending: AtomicBool,
    messages: Mutex<VecDeque<PmtuMessage>>,
    /// The owner's waker, set once the owner exists (a message posted before is read on its
    /// first round).
    waker: OnceLock<Waker>,
}

impl PmtuInbox {
    /// Sets the poller to wake when a message arrives.
    pub fn set_waker(&self, waker: Waker) {
        let _ = self.waker.set(waker);
    }

    /// Posts a message and wakes the owner; `false` when the inbox is full (dropped).
    pub fn post(&self, m: PmtuMessage) -> bool {
        {
            let mut q = self.messages.lock().unwrap_or_else(|e| e.into_inner());
            if q.len() >= INBOX_CAPACITY {
                return false;
            }
            q.push_back(m);
        }
        self.pending.store(true, Ordering::Release);
        if let Some(w) = self.waker.get() {
            w.wake();
        }
        true
    }

    /// Every message posted so far, oldest first; cheap when there is none.
    pub fn drain(&self, mut each: impl FnMut(&PmtuMessage)) -> usize {
        if !self.pending.swap(false, Ordering::Acquire) {
            return 0;
        }
        let taken: Vec<PmtuMessage> = {
            let mut q = self.messages.lock().unwrap_or_else(|e| e.into_inner());
            q.drain(..).collect()
        };
        taken.iter().for_each(&mut each);
        taken.len()
    }
}

/// Every poller's inbox, by queue index: what each poller posts to.
pub type PmtuRelay = Arc<Vec<Arc<PmtuInbox>>>;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tcp::FlowKey;
    use crate::wire::IpFamily;
    use std::net::{Ipv4Addr, SocketAddrV4};

    fn message(mtu: u32) -> PmtuMessage {
        PmtuMessage {
            family: IpFamily::Ipv4,
            mtu,
            flow: FlowKey::new_v4(
                SocketAddrV4::new(Ipv4Addr::new(10, 0, 0, 1), 80),
                SocketAddrV4::new(Ipv4Addr::new(10, 0, 0, 2), 4000),
            ),
            seq: crate::wire::SeqNumber(7),
        }
    }

    #[test]
    fn an_inbox_delivers_in_order_once_and_holds_a_bounded_number() {
        let inbox = PmtuInbox::default();
        assert_eq!(inbox.drain(|_| panic!("empty")), 0);
        assert!(inbox.post(message(1400)) && inbox.post(message(1300)));
        let mut got = Vec::new();
        assert_eq!(inbox.drain(|m| got.push(m.mtu)), 2);
        assert_eq!(got, vec![1400, 1300]);
        assert_eq!(inbox.drain(|_| panic!("delivered twice")), 0);
        for _ in 0..INBOX_CAPACITY {
            assert!(inbox.post(message(1280)));
        }
        assert!(!inbox.post(message(1280)), "full: dropped");
        assert_eq!(inbox.drain(|_| {}), INBOX_CAPACITY);
    }

    #[test]
    fn posting_wakes_the_owner() {
        let inbox = PmtuInbox::default();
        let waker = Waker::new().unwrap();
        inbox.set_waker(waker.clone());
        assert!(inbox.post(message(1400)));
        let mut fds = [libc::pollfd {
            fd: waker.raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        }];
        // SAFETY: poll(2) on one live pollfd of our own, with a zero timeout.
        let ready = unsafe { libc::poll(fds.as_mut_ptr(), 1, 0) };
        assert_eq!(ready, 1, "the waker's descriptor is readable");
    }
}
