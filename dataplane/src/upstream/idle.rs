//! The idle (keep-alive) connections of each upstream server: slot indices in the order they
//! went idle, the newest handed out first (a hot connection, whose peer has not yet started
//! its own idle timer), the oldest evicted when a server's list is full and expired first.
//!
//! The bound is the pool's `keepalive`, given with each connection put back. A server's list
//! is allocated with room for the whole bound the first time the server is seen, and kept when
//! it empties: putting a connection back allocates only when a reload raised the bound.

use std::collections::{HashMap, VecDeque};

use super::ServerKey;
use crate::time::{Duration, Instant};

pub(super) struct IdlePool {
    lists: HashMap<ServerKey, VecDeque<(u32, Instant)>>,
    total: usize,
}

impl IdlePool {
    pub(super) fn new() -> Self {
        IdlePool {
            lists: HashMap::new(),
            total: 0,
        }
    }

    /// Idle connections, all servers together.
    pub(super) fn total(&self) -> usize {
        self.total
    }

    pub(super) fn count(&self, server: ServerKey) -> usize {
        self.lists.get(&server).map_or(0, VecDeque::len)
    }

    /// Puts `index` at the newest end of `server`'s list, kept to `max_idle` entries: returns
    /// the connection that must be closed to keep that bound, the server's oldest when its
    /// list was full, or `index` itself when the bound is zero. A list longer than the bound
    /// (a reload lowered it) loses its oldest entries with [`IdlePool::pop_over`].
    pub(super) fn push(
        &mut self,
        server: ServerKey,
        index: u32,
        now: Instant,
        max_idle: usize,
    ) -> Option<u32> {
        if max_idle == 0 {
            return Some(index);
        }
        let list = self
            .lists
            .entry(server)
            .or_insert_with(|| VecDeque::with_capacity(max_idle));
        let evicted = if list.len() >= max_idle {
            list.pop_front().map(|(i, _)| i)
        } else {
            self.total += 1;
            None
        };
        list.push_back((index, now));
        evicted
    }

    /// Takes the oldest idle connection of `server` while its list holds more than
    /// `max_idle`.
    pub(super) fn pop_over(&mut self, server: ServerKey, max_idle: usize) -> Option<u32> {
        let list = self.lists.get_mut(&server)?;
        if list.len() <= max_idle {
            return None;
        }
        self.total -= 1;
        list.pop_front().map(|(i, _)| i)
    }

    /// Takes the newest idle connection of `server`, with when it went idle.
    pub(super) fn pop_newest(&mut self, server: ServerKey) -> Option<(u32, Instant)> {
        let taken = self.lists.get_mut(&server)?.pop_back();
        if taken.is_some() {
            self.total -= 1;
        }
        taken
    }

    /// Takes `index` out of `server`'s list (it broke while idle). False if it was not there.
    pub(super) fn remove(&mut self, server: ServerKey, index: u32) -> bool {
        let Some(list) = self.lists.get_mut(&server) else {
            return false;
        };
        let Some(pos) = list.iter().position(|&(i, _)| i == index) else {
            return false;
        };
        list.remove(pos);
        self.total -= 1;
        true
    }

    /// Takes out one connection idle since `now - timeout` or earlier (the oldest of its
    /// server), if any. One look at the front of each server's list.
    pub(super) fn pop_expired(&mut self, now: Instant, timeout: Duration) -> Option<u32> {
        for list in self.lists.values_mut() {
            if let Some(&(index, since)) = list.front() {
                if since + timeout <= now {
                    list.pop_front();
                    self.total -= 1;
                    return Some(index);
                }
            }
        }
        None
    }

    /// When the oldest idle connection expires, if any is idle.
    pub(super) fn next_expiry(&self, timeout: Duration) -> Option<Instant> {
        self.lists
            .values()
            .filter_map(|l| l.front().map(|&(_, since)| since + timeout))
            .min()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: ServerKey = ServerKey(std::net::SocketAddr::V4(std::net::SocketAddrV4::new(
        std::net::Ipv4Addr::new(10, 0, 0, 1),
        80,
    )));
    const B: ServerKey = ServerKey(std::net::SocketAddr::V4(std::net::SocketAddrV4::new(
        std::net::Ipv4Addr::new(10, 0, 0, 2),
        80,
    )));

    #[test]
    fn newest_goes_out_first_and_a_full_list_evicts_its_oldest() {
        let mut p = IdlePool::new();
        assert_eq!(p.push(A, 1, Instant::from_secs(1), 2), None);
        assert_eq!(p.push(A, 2, Instant::from_secs(2), 2), None);
        assert_eq!(p.push(B, 9, Instant::from_secs(2), 2), None);
        assert_eq!(p.push(A, 3, Instant::from_secs(3), 2), Some(1));
        assert_eq!((p.count(A), p.count(B), p.total()), (2, 1, 3));
        assert_eq!(p.pop_newest(A), Some((3, Instant::from_secs(3))));
        assert_eq!(p.pop_newest(A), Some((2, Instant::from_secs(2))));
        assert_eq!(p.pop_newest(A), None);
        assert_eq!(p.total(), 1);
    }

    #[test]
    fn a_zero_bound_keeps_nothing() {
        let mut p = IdlePool::new();
        assert_eq!(p.push(A, 4, Instant::ZERO, 0), Some(4));
        assert_eq!(p.total(), 0);
        assert_eq!(p.pop_newest(A), None);
    }

    #[test]
    fn remove_takes_one_connection_from_the_middle() {
        let mut p = IdlePool::new();
        for i in 0..3 {
            p.push(A, i, Instant::from_secs(u64::from(i)), 4);
        }
        assert!(p.remove(A, 1));
        assert!(!p.remove(A, 1));
        assert!(!p.remove(B, 0));
        assert_eq!(p.total(), 2);
        assert_eq!(p.pop_newest(A).map(|(i, _)| i), Some(2));
        assert_eq!(p.pop_newest(A).map(|(i, _)| i), Some(0));
    }

    #[test]
    fn a_lowered_bound_trims_the_oldest_first() {
        let mut p = IdlePool::new();
        for i in 0..4 {
            assert_eq!(p.push(A, i, Instant::from_secs(u64::from(i)), 4), None);
        }
        assert_eq!(p.pop_over(A, 4), None);
        assert_eq!(p.pop_over(B, 0), None);
        assert_eq!(p.pop_over(A, 2), Some(0));
        assert_eq!(p.pop_over(A, 2), Some(1));
        assert_eq!(p.pop_over(A, 2), None);
        assert_eq!((p.count(A), p.total()), (2, 2));
        assert_eq!(p.pop_newest(A).map(|(i, _)| i), Some(3));
    }

    #[test]
    fn expiry_is_exact_at_the_timeout_and_takes_only_the_expired() {
        let mut p = IdlePool::new();
        let timeout = Duration::from_secs(10);
        p.push(A, 1, Instant::from_secs(1), 4);
        p.push(A, 2, Instant::from_secs(5), 4);
        p.push(B, 3, Instant::from_secs(3), 4);
        assert_eq!(p.next_expiry(timeout), Some(Instant::from_secs(11)));
        let just_before = Instant::from_secs(11) - Duration::from_micros(1);
        assert_eq!(p.pop_expired(just_before, timeout), None);
        let mut closed = Vec::new();
        while let Some(i) = p.pop_expired(Instant::from_secs(13), timeout) {
            closed.push(i);
        }
        closed.sort_unstable();
        assert_eq!(closed, [1, 3]);
        assert_eq!((p.count(A), p.count(B), p.total()), (1, 0, 1));
        assert_eq!(p.next_expiry(timeout), Some(Instant::from_secs(15)));
    }
}
