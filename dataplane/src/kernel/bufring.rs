//! A registered ring of provided receive buffers (`IORING_REGISTER_PBUF_RING`).
//!
//! The kernel picks a buffer for each receive from this ring and reports its id in the
//! completion; user space hands it back with [`BufRing::recycle`] once the bytes have been
//! used. The ring of entries and the buffers themselves are allocated once and live as long as
//! the owning `KernelPath` (which unregisters the ring before freeing them).

use std::io;
use std::sync::atomic::{AtomicU16, Ordering};

use io_uring::types::BufRingEntry;
use io_uring::IoUring;

/// The entries array must be page aligned for the kernel.
#[repr(C, align(4096))]
struct Page([u8; 4096]);

pub(crate) struct BufRing {
    bgid: u16,
    count: u16,
    tail: u16,
    buf_len: usize,
    /// `count` `BufRingEntry`s, shared with the kernel.
    entries: Vec<Page>,
    /// `count` buffers of `buf_len` bytes, written by the kernel.
    data: Vec<u8>,
}

impl BufRing {
    /// Allocates `count` buffers (a power of two, at most 32768) of `buf_len` bytes and
    /// registers them as buffer group `bgid`. Fails when the kernel refuses buffer rings.
    pub(crate) fn register(
        ring: &IoUring,
        bgid: u16,
        count: u16,
        buf_len: usize,
    ) -> io::Result<Self> {
        if !count.is_power_of_two() || count > 32768 || buf_len == 0 || buf_len > u32::MAX as usize
        {
            return Err(io::Error::from(io::ErrorKind::InvalidInput));
        }
        let bytes = usize::from(count) * std::mem::size_of::<BufRingEntry>();
        let pages = bytes.div_ceil(4096);
        let mut entries = Vec::with_capacity(pages);
        entries.resize_with(pages, || Page([0; 4096]));
        let data = vec![0u8; usize::from(count) * buf_len];
        let mut this = BufRing {
            bgid,
            count,
            tail: 0,
            buf_len,
            entries,
            data,
        };
        // SAFETY: `entries` is page aligned, holds `count` entries, and is neither moved (a
        // Vec's heap block stays put) nor freed before the group is unregistered: `KernelPath`
        // unregisters it in `Drop` once no receive is in flight, or leaks it.
        unsafe {
            ring.submitter().register_buf_ring_with_flags(
                this.entries.as_mut_ptr() as u64,
                count,
                bgid,
                0,
            )?;
        }
        for bid in 0..count {
            this.recycle(bid);
        }
        Ok(this)
    }

    pub(crate) fn bgid(&self) -> u16 {
        self.bgid
    }

    /// The first `len` bytes of buffer `bid`, as a completion reported them.
    pub(crate) fn get(&self, bid: u16, len: usize) -> &[u8] {
        let start = usize::from(bid % self.count) * self.buf_len;
        &self.data[start..start + len.min(self.buf_len)]
    }

    /// Gives buffer `bid` back to the kernel.
    pub(crate) fn recycle(&mut self, bid: u16) {
        let bid = bid % self.count;
        let addr = self.data.as_mut_ptr() as u64 + (usize::from(bid) * self.buf_len) as u64;
        let base = self.entries.as_mut_ptr().cast::<BufRingEntry>();
        let slot = usize::from(self.tail & (self.count - 1));
        // SAFETY: `slot < count` and the entries array holds `count` entries. The kernel reads
        // an entry only once the tail below has moved past it, and it has moved past this slot
        // (consumed it) before we wrap around to it, so nobody else touches it now.
        unsafe {
            let entry = &mut *base.add(slot);
            entry.set_addr(addr);
            entry.set_len(self.buf_len as u32);
            entry.set_bid(bid);
        }
        self.tail = self.tail.wrapping_add(1);
        // SAFETY: the tail is the `resv` field of entry 0, a u16 inside the entries array,
        // aligned for an atomic u16; the kernel reads it with an acquire load.
        let tail = unsafe { &*BufRingEntry::tail(base).cast::<AtomicU16>() };
        tail.store(self.tail, Ordering::Release);
    }

    /// Unregisters the group; after this the memory is ours alone.
    pub(crate) fn unregister(&self, ring: &IoUring) -> io::Result<()> {
        ring.submitter().unregister_buf_ring(self.bgid)
    }
}
