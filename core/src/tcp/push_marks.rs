//! Where PSH goes (RFC 9293 §3.9.1.2): on the segment that carries the last byte of each of
//! the application's writes, as Linux marks the last segment of each `sendmsg`.
//!
//! Why it matters beyond the RFC: a Linux receiver ACKs at once each pushed segment its
//! reader takes (`tcp_cleanup_rbuf`, ICSK_ACK_PUSHED), and every second segment otherwise.
//! So where PSH falls decides how many ACKs come back, and with them how a sender's slow
//! start grows and whether HyStart's ACK trains form. Traced through the path emulator
//! (80 ms, 10 Mbit/s, a 1 MiB download; `loadgen paths`):
//! - PSH on every segment drew 727 ACKs for 725 segments. The unbroken ACK trains ended
//!   slow start at 73 segments where Linux's ended at 116 (`TCPHystartTrainCwnd`), and on a
//!   lossy path the smaller window cost seconds in some repetitions.
//! - PSH only where the queue ran dry left ACKs for every second segment. Without trains,
//!   HyStart ended slow start too late at 20 ms and 10 Mbit/s, and the queue overflowed
//!   (140 resends in a run where the kernel path lost a few).
//! - The kernel path, pushing at the end of each write, drew 565 ACKs for 731 segments.
//!
//! The marks are the ends of the writes not yet sent, oldest first, at most
//! [`MAX_PUSH_MARKS`]. More writes than that before their data goes out share the last mark
//! (the newest moves forward: one push for several writes, which is what Linux does too
//! when writes join one segment).

use crate::wire::SeqNumber;

/// Writes whose ends are remembered until their data goes out.
pub const MAX_PUSH_MARKS: usize = 8;

#[derive(Debug, Clone, Copy)]
pub struct PushMarks {
    ends: [SeqNumber; MAX_PUSH_MARKS],
    /// Index of the oldest mark.
    head: u8,
    len: u8,
}

impl Default for PushMarks {
    fn default() -> Self {
        PushMarks {
            ends: [SeqNumber(0); MAX_PUSH_MARKS],
            head: 0,
            len: 0,
        }
    }
}

impl PushMarks {
    /// The application wrote up to `end` (the queued data's end after the write).
    pub fn on_write(&mut self, end: SeqNumber) {
        let len = usize::from(self.len);
        if len == MAX_PUSH_MARKS {
            let newest = (usize::from(self.head) + len - 1) % MAX_PUSH_MARKS;
            self.ends[newest] = end;
            return;
        }
        let at = (usize::from(self.head) + len) % MAX_PUSH_MARKS;
        self.ends[at] = end;
        self.len += 1;
    }

    /// A segment of data `[seq, end)` goes out: the marks it reaches are done with; true if
    /// one of them falls in it (the segment ends a write).
    pub fn on_send(&mut self, seq: SeqNumber, end: SeqNumber) -> bool {
        let mut push = false;
        while self.len > 0 {
            let mark = self.ends[usize::from(self.head)];
            if mark.diff(end) > 0 {
                break;
            }
            push |= mark.diff(seq) > 0;
            self.head = ((usize::from(self.head) + 1) % MAX_PUSH_MARKS) as u8;
            self.len -= 1;
        }
        push
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(n: u32) -> SeqNumber {
        SeqNumber(n)
    }

    #[test]
    fn rfc9293_s3_9_1_2_the_segment_carrying_a_writes_last_byte_is_pushed() {
        let mut m = PushMarks::default();
        m.on_write(s(1000));
        m.on_write(s(2500));
        assert!(!m.on_send(s(0), s(900)));
        assert!(m.on_send(s(900), s(1800)), "ends the first write");
        assert!(!m.on_send(s(1800), s(2400)));
        assert!(m.on_send(s(2400), s(2500)), "ends the second");
        assert!(!m.on_send(s(2500), s(3000)), "no mark left");
    }

    #[test]
    fn a_resend_of_data_already_pushed_takes_no_mark_and_wraparound_holds() {
        let base = u32::MAX - 500;
        let mut m = PushMarks::default();
        m.on_write(s(base.wrapping_add(1000)));
        assert!(m.on_send(s(base), s(base.wrapping_add(1000))));
        m.on_write(s(base.wrapping_add(3000)));
        // A go-back-N resend of the first write's data: that mark is gone.
        assert!(!m.on_send(s(base), s(base.wrapping_add(1000))));
        assert!(m.on_send(s(base.wrapping_add(1000)), s(base.wrapping_add(3000))));
    }

    #[test]
    fn more_writes_than_marks_share_the_newest() {
        let mut m = PushMarks::default();
        for i in 1..=20u32 {
            m.on_write(s(i * 100));
        }
        // The first seven writes kept their marks; the rest moved the eighth to 2000.
        let pushed: Vec<u32> = (0..20u32)
            .filter(|&i| m.on_send(s(i * 100), s((i + 1) * 100)))
            .map(|i| (i + 1) * 100)
            .collect();
        assert_eq!(pushed, [100, 200, 300, 400, 500, 600, 700, 2000]);
    }
}
