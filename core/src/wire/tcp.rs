//! TCP header: view, flags, options, and the header as a plain struct.

use core::fmt;
use core::net::{Ipv4Addr, Ipv6Addr};
use core::ops::{BitAnd, BitOr, BitOrAssign};

use super::{checksum, ip_protocol, SeqNumber, WireError};

/// The flag byte of a TCP header (byte 13: CWR ECE URG ACK PSH RST SYN FIN).
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct TcpFlags(u8);

impl TcpFlags {
    pub const FIN: TcpFlags = TcpFlags(0x01);
    pub const SYN: TcpFlags = TcpFlags(0x02);
    pub const RST: TcpFlags = TcpFlags(0x04);
    pub const PSH: TcpFlags = TcpFlags(0x08);
    pub const ACK: TcpFlags = TcpFlags(0x10);
    pub const URG: TcpFlags = TcpFlags(0x20);
    pub const ECE: TcpFlags = TcpFlags(0x40);
    pub const CWR: TcpFlags = TcpFlags(0x80);

    #[inline]
    pub const fn empty() -> TcpFlags {
        TcpFlags(0)
    }

    #[inline]
    pub const fn from_bits(bits: u8) -> TcpFlags {
        TcpFlags(bits)
    }

    #[inline]
    pub const fn bits(self) -> u8 {
        self.0
    }

    #[inline]
    pub const fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// All of `other`'s flags are set.
    #[inline]
    pub const fn contains(self, other: TcpFlags) -> bool {
        self.0 & other.0 == other.0
    }

    /// Any of `other`'s flags is set.
    #[inline]
    pub const fn intersects(self, other: TcpFlags) -> bool {
        self.0 & other.0 != 0
    }

    #[inline]
    pub fn insert(&mut self, other: TcpFlags) {
        self.0 |= other.0;
    }

    #[inline]
    pub fn remove(&mut self, other: TcpFlags) {
        self.0 &= !other.0;
    }
}

impl BitOr for TcpFlags {
    type Output = TcpFlags;
    #[inline]
    fn bitor(self, rhs: TcpFlags) -> TcpFlags {
        TcpFlags(self.0 | rhs.0)
    }
}

impl BitOrAssign for TcpFlags {
    #[inline]
    fn bitor_assign(&mut self, rhs: TcpFlags) {
        self.0 |= rhs.0;
    }
}

impl BitAnd for TcpFlags {
    type Output = TcpFlags;
    #[inline]
    fn bitand(self, rhs: TcpFlags) -> TcpFlags {
        TcpFlags(self.0 & rhs.0)
    }
}

impl fmt::Debug for TcpFlags {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const NAMES: [&str; 8] = ["FIN", "SYN", "RST", "PSH", "ACK", "URG", "ECE", "CWR"];
        if self.0 == 0 {
            return f.write_str("(none)");
        }
        let mut first = true;
        for (i, name) in NAMES.iter().enumerate() {
            if self.0 & (1 << i) != 0 {
                if !first {
                    f.write_str("|")?;
                }
                f.write_str(name)?;
                first = false;
            }
        }
        Ok(())
    }
}

/// One SACK block: bytes `left..right` received (RFC 2018).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct SackBlock {
    pub left: SeqNumber,
    pub right: SeqNumber,
}

/// Option kinds.
mod kind {
    pub const EOL: u8 = 0;
    pub const NOP: u8 = 1;
    pub const MSS: u8 = 2;
    pub const WINDOW_SCALE: u8 = 3;
    pub const SACK_PERMITTED: u8 = 4;
    pub const SACK: u8 = 5;
    pub const TIMESTAMPS: u8 = 8;
}

/// Most option bytes a header can carry (data offset 15).
pub const MAX_OPTIONS_LEN: usize = 40;
/// Most SACK blocks recorded.
pub const MAX_SACK_BLOCKS: usize = 4;

/// The options of a segment. Unknown kinds are skipped by their length on parse and never
/// emitted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct TcpOptions {
    pub mss: Option<u16>,
    /// As sent; clamping to 14 is tcp's business.
    pub window_scale: Option<u8>,
    pub sack_permitted: bool,
    /// (TSval, TSecr).
    pub timestamps: Option<(u32, u32)>,
    /// The first `sack_len` entries are meaningful.
    pub sack_blocks: [SackBlock; 4],
    pub sack_len: u8,
}

impl TcpOptions {
    /// The SACK blocks present (at most 4, whatever `sack_len` says).
    #[inline]
    pub fn sack(&self) -> &[SackBlock] {
        &self.sack_blocks[..usize::from(self.sack_len).min(MAX_SACK_BLOCKS)]
    }

    /// Replaces the SACK blocks with (at most 4 of) `blocks`.
    #[inline]
    pub fn set_sack(&mut self, blocks: &[SackBlock]) {
        let n = blocks.len().min(MAX_SACK_BLOCKS);
        self.sack_blocks[..n].copy_from_slice(&blocks[..n]);
        self.sack_len = n as u8;
    }

    /// Parses the options area of a header (the bytes between the fixed header and the data
    /// offset). Later occurrences of a kind replace earlier ones.
    pub fn parse(mut bytes: &[u8]) -> Result<TcpOptions, WireError> {
        let mut opts = TcpOptions::default();
        while let [k, rest @ ..] = bytes {
            match *k {
                kind::EOL => break,
                kind::NOP => {
                    bytes = rest;
                    continue;
                }
                _ => {}
            }
            let len = match rest.first() {
                Some(&l) => usize::from(l),
                None => return Err(WireError::BadTcpOption),
            };
            if len < 2 || len > bytes.len() {
                return Err(WireError::BadTcpOption);
            }
            let data = &bytes[2..len];
            match (*k, len) {
                (kind::MSS, 4) => opts.mss = Some(u16::from_be_bytes([data[0], data[1]])),
                (kind::WINDOW_SCALE, 3) => opts.window_scale = Some(data[0]),
                (kind::SACK_PERMITTED, 2) => opts.sack_permitted = true,
                (kind::TIMESTAMPS, 10) => {
                    let tsval = u32::from_be_bytes([data[0], data[1], data[2], data[3]]);
                    let tsecr = u32::from_be_bytes([data[4], data[5], data[6], data[7]]);
                    opts.timestamps = Some((tsval, tsecr));
                }
                (kind::SACK, _) if len >= 10 && (len - 2) % 8 == 0 => {
                    // 40 option bytes hold at most 4 blocks; a longer slice handed to
                    // `parse` directly is cut at 4. A repeated SACK option replaces the first.
                    opts.sack_blocks = Default::default();
                    let mut n = 0;
                    for b in data.chunks_exact(8) {
                        opts.sack_blocks[n] = SackBlock {
                            left: SeqNumber(u32::from_be_bytes([b[0], b[1], b[2], b[3]])),
                            right: SeqNumber(u32::from_be_bytes([b[4], b[5], b[6], b[7]])),
                        };
                        n += 1;
                        if n == MAX_SACK_BLOCKS {
                            break;
                        }
                    }
                    opts.sack_len = n as u8;
                }
                (
                    kind::MSS
                    | kind::WINDOW_SCALE
                    | kind::SACK_PERMITTED
                    | kind::TIMESTAMPS
                    | kind::SACK,
                    _,
                ) => return Err(WireError::BadTcpOption),
                _ => {} // unknown kind: skipped by its length
            }
            bytes = &bytes[len..];
        }
        Ok(opts)
    }

    /// How many SACK blocks `emit` writes: as many as fit in 40 bytes beside the other
    /// options.
    #[inline]
    pub fn emitted_sack_blocks(&self) -> usize {
        let want = usize::from(self.sack_len).min(MAX_SACK_BLOCKS);
        if want == 0 {
            return 0;
        }
        let room = MAX_OPTIONS_LEN - self.fixed_len();
        want.min(room.saturating_sub(4) / 8)
    }

    /// Bytes of the options other than SACK blocks (at most 20).
    #[inline]
    fn fixed_len(&self) -> usize {
        let mut len = 0;
        if self.mss.is_some() {
            len += 4;
        }
        if self.timestamps.is_some() {
            len += 12; // SACK-permitted, if any, rides in the timestamps' padding
        } else if self.sack_permitted {
            len += 4;
        }
        if self.window_scale.is_some() {
            len += 4;
        }
        len
    }

    /// Bytes `emit` writes: a multiple of 4, at most 40.
    #[inline]
    pub fn emitted_len(&self) -> usize {
        let n = self.emitted_sack_blocks();
        self.fixed_len() + if n > 0 { 4 + 8 * n } else { 0 }
    }

    /// Writes the options as Linux lays them out (`tcp_options_write`): MSS; SACK-permitted
    /// and timestamps packed together (`4,2,8,10` or `1,1,8,10`), or `1,1,4,2` alone; `1,3,3,ws`;
    /// `1,1,5,len` and the SACK blocks. Returns the length written (`emitted_len()`).
    pub fn emit(&self, buf: &mut [u8]) -> Result<usize, WireError> {
        let total = self.emitted_len();
        if buf.len() < total {
            return Err(WireError::BufferTooSmall);
        }
        let mut at = 0;
        let mut put = |bytes: &[u8]| {
            buf[at..at + bytes.len()].copy_from_slice(bytes);
            at += bytes.len();
        };
        if let Some(mss) = self.mss {
            let m = mss.to_be_bytes();
            put(&[kind::MSS, 4, m[0], m[1]]);
        }
        if let Some((tsval, tsecr)) = self.timestamps {
            if self.sack_permitted {
                put(&[kind::SACK_PERMITTED, 2, kind::TIMESTAMPS, 10]);
            } else {
                put(&[kind::NOP, kind::NOP, kind::TIMESTAMPS, 10]);
            }
            put(&tsval.to_be_bytes());
            put(&tsecr.to_be_bytes());
        } else if self.sack_permitted {
            put(&[kind::NOP, kind::NOP, kind::SACK_PERMITTED, 2]);
        }
        if let Some(ws) = self.window_scale {
            put(&[kind::NOP, kind::WINDOW_SCALE, 3, ws]);
        }
        let n = self.emitted_sack_blocks();
        if n > 0 {
            put(&[kind::NOP, kind::NOP, kind::SACK, (2 + 8 * n) as u8]);
            for b in &self.sack_blocks[..n] {
                put(&b.left.0.to_be_bytes());
                put(&b.right.0.to_be_bytes());
            }
        }
        debug_assert_eq!(at, total);
        Ok(total)
    }
}

mod field {
    use core::ops::Range;

    pub const SRC_PORT: Range<usize> = 0..2;
    pub const DST_PORT: Range<usize> = 2..4;
    pub const SEQ_NUM: Range<usize> = 4..8;
    pub const ACK_NUM: Range<usize> = 8..12;
    pub const DATA_OFF: usize = 12;
    pub const FLAGS: usize = 13;
    pub const WIN_SIZE: Range<usize> = 14..16;
    pub const CHECKSUM: Range<usize> = 16..18;
    pub const URGENT: Range<usize> = 18..20;
}

/// Length of a TCP header without options.
pub const HEADER_LEN: usize = 20;

#[inline]
fn be16(b: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([b[at], b[at + 1]])
}

#[inline]
fn be32(b: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

/// A view over a TCP segment (header + payload; the buffer ends where the segment ends).
///
/// After [`check_len`](Self::check_len) succeeds, `20 <= header_len() <= buffer length`, so
/// no accessor panics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TcpPacket<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> TcpPacket<T> {
    #[inline]
    pub const fn new_unchecked(buffer: T) -> Self {
        TcpPacket { buffer }
    }

    #[inline]
    pub fn new_checked(buffer: T) -> Result<Self, WireError> {
        let packet = Self::new_unchecked(buffer);
        packet.check_len()?;
        Ok(packet)
    }

    /// `Truncated` under 20 bytes; `BadTcpDataOffset` if the data offset is below 5 or
    /// points past the end of the segment.
    #[inline]
    pub fn check_len(&self) -> Result<(), WireError> {
        let len = self.buffer.as_ref().len();
        if len < HEADER_LEN {
            return Err(WireError::Truncated);
        }
        let hl = self.header_len();
        if hl < HEADER_LEN || hl > len {
            return Err(WireError::BadTcpDataOffset);
        }
        Ok(())
    }

    #[inline]
    pub fn into_inner(self) -> T {
        self.buffer
    }

    #[inline]
    pub fn src_port(&self) -> u16 {
        be16(self.buffer.as_ref(), field::SRC_PORT.start)
    }

    #[inline]
    pub fn dst_port(&self) -> u16 {
        be16(self.buffer.as_ref(), field::DST_PORT.start)
    }

    #[inline]
    pub fn seq_number(&self) -> SeqNumber {
        SeqNumber(be32(self.buffer.as_ref(), field::SEQ_NUM.start))
    }

    /// The acknowledgment field, whether or not ACK is set.
    #[inline]
    pub fn ack_number(&self) -> SeqNumber {
        SeqNumber(be32(self.buffer.as_ref(), field::ACK_NUM.start))
    }

    /// Data offset in bytes (options included).
    #[inline]
    pub fn header_len(&self) -> usize {
        usize::from(self.buffer.as_ref()[field::DATA_OFF] >> 4) * 4
    }

    #[inline]
    pub fn flags(&self) -> TcpFlags {
        TcpFlags(self.buffer.as_ref()[field::FLAGS])
    }

    #[inline]
    pub fn window_len(&self) -> u16 {
        be16(self.buffer.as_ref(), field::WIN_SIZE.start)
    }

    #[inline]
    pub fn checksum(&self) -> u16 {
        be16(self.buffer.as_ref(), field::CHECKSUM.start)
    }

    #[inline]
    pub fn urgent_at(&self) -> u16 {
        be16(self.buffer.as_ref(), field::URGENT.start)
    }

    /// The raw options area.
    #[inline]
    pub fn options(&self) -> &[u8] {
        &self.buffer.as_ref()[HEADER_LEN..self.header_len()]
    }

    /// Segment length (header + payload) as the pseudo-header counts it.
    #[inline]
    pub fn segment_len(&self) -> usize {
        self.buffer.as_ref().len()
    }

    /// True when the checksum over the IPv4 pseudo-header and the whole segment verifies.
    #[inline]
    pub fn verify_checksum(&self, src: Ipv4Addr, dst: Ipv4Addr) -> bool {
        let Ok(len) = u16::try_from(self.buffer.as_ref().len()) else {
            return false;
        };
        self.verify_with(checksum::pseudo_header_ipv4(
            src,
            dst,
            ip_protocol::TCP,
            len,
        ))
    }

    /// True when the checksum over the IPv6 pseudo-header (RFC 8200 §8.1) and the whole
    /// segment verifies.
    #[inline]
    pub fn verify_checksum_ipv6(&self, src: Ipv6Addr, dst: Ipv6Addr) -> bool {
        let Ok(len) = u16::try_from(self.buffer.as_ref().len()) else {
            return false;
        };
        self.verify_with(checksum::pseudo_header_ipv6(
            src,
            dst,
            ip_protocol::TCP,
            u32::from(len),
        ))
    }

    #[inline]
    fn verify_with(&self, pseudo_header: u32) -> bool {
        checksum::is_valid(checksum::combine(
            pseudo_header,
            checksum::sum(self.buffer.as_ref()),
        ))
    }
}

impl<'a, T: AsRef<[u8]> + ?Sized> TcpPacket<&'a T> {
    /// The bytes after the header, borrowed for the buffer's lifetime.
    #[inline]
    pub fn payload(&self) -> &'a [u8] {
        let hl = self.header_len();
        &self.buffer.as_ref()[hl..]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> TcpPacket<T> {
    #[inline]
    pub fn set_src_port(&mut self, value: u16) {
        self.buffer.as_mut()[field::SRC_PORT].copy_from_slice(&value.to_be_bytes());
    }

    #[inline]
    pub fn set_dst_port(&mut self, value: u16) {
        self.buffer.as_mut()[field::DST_PORT].copy_from_slice(&value.to_be_bytes());
    }

    #[inline]
    pub fn set_seq_number(&mut self, value: SeqNumber) {
        self.buffer.as_mut()[field::SEQ_NUM].copy_from_slice(&value.0.to_be_bytes());
    }

    #[inline]
    pub fn set_ack_number(&mut self, value: SeqNumber) {
        self.buffer.as_mut()[field::ACK_NUM].copy_from_slice(&value.0.to_be_bytes());
    }

    /// Sets the data offset (in bytes, a multiple of 4); the reserved bits are cleared.
    #[inline]
    pub fn set_header_len(&mut self, len: usize) {
        self.buffer.as_mut()[field::DATA_OFF] = ((len / 4) as u8) << 4;
    }

    #[inline]
    pub fn set_flags(&mut self, flags: TcpFlags) {
        self.buffer.as_mut()[field::FLAGS] = flags.0;
    }

    #[inline]
    pub fn set_window_len(&mut self, value: u16) {
        self.buffer.as_mut()[field::WIN_SIZE].copy_from_slice(&value.to_be_bytes());
    }

    #[inline]
    pub fn set_checksum(&mut self, value: u16) {
        self.buffer.as_mut()[field::CHECKSUM].copy_from_slice(&value.to_be_bytes());
    }

    #[inline]
    pub fn set_urgent_at(&mut self, value: u16) {
        self.buffer.as_mut()[field::URGENT].copy_from_slice(&value.to_be_bytes());
    }

    /// The raw options area (per the current data offset).
    #[inline]
    pub fn options_mut(&mut self) -> &mut [u8] {
        let hl = self.header_len();
        &mut self.buffer.as_mut()[HEADER_LEN..hl]
    }

    /// The bytes after the header.
    #[inline]
    pub fn payload_mut(&mut self) -> &mut [u8] {
        let hl = self.header_len();
        &mut self.buffer.as_mut()[hl..]
    }

    /// Computes and stores the checksum over the IPv4 pseudo-header and the whole buffer
    /// (which must be exactly the segment, at most 65535 bytes).
    #[inline]
    pub fn fill_checksum(&mut self, src: Ipv4Addr, dst: Ipv4Addr) {
        let len = self.buffer.as_ref().len() as u16;
        self.fill_with(checksum::pseudo_header_ipv4(
            src,
            dst,
            ip_protocol::TCP,
            len,
        ));
    }

    /// Computes and stores the checksum over the IPv6 pseudo-header (RFC 8200 §8.1) and the
    /// whole buffer (which must be exactly the segment, at most 65535 bytes: no jumbograms).
    #[inline]
    pub fn fill_checksum_ipv6(&mut self, src: Ipv6Addr, dst: Ipv6Addr) {
        let len = self.buffer.as_ref().len() as u32;
        self.fill_with(checksum::pseudo_header_ipv6(
            src,
            dst,
            ip_protocol::TCP,
            len,
        ));
    }

    #[inline]
    fn fill_with(&mut self, pseudo_header: u32) {
        self.set_checksum(0);
        let s = checksum::combine(pseudo_header, checksum::sum(self.buffer.as_ref()));
        self.set_checksum(checksum::finish(s));
    }
}

/// A TCP header without its payload, as parsed and as emitted. `Default` is all zeros with
/// no flags and no options, handy as a template (`TcpHeader { flags, ..Default::default() }`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct TcpHeader {
    pub src_port: u16,
    pub dst_port: u16,
    pub seq: SeqNumber,
    /// Meaningful only with `TcpFlags::ACK`; parsed and emitted as is.
    pub ack: SeqNumber,
    pub flags: TcpFlags,
    pub window: u16,
    pub urgent: u16,
    pub options: TcpOptions,
}

impl TcpHeader {
    /// Reads the header and its options (`BadTcpOption`). Does not verify the checksum (see
    /// [`TcpPacket::verify_checksum`]). The packet must have passed `check_len`.
    #[inline]
    pub fn parse<T: AsRef<[u8]>>(packet: &TcpPacket<T>) -> Result<TcpHeader, WireError> {
        Ok(TcpHeader {
            src_port: packet.src_port(),
            dst_port: packet.dst_port(),
            seq: packet.seq_number(),
            ack: packet.ack_number(),
            flags: packet.flags(),
            window: packet.window_len(),
            urgent: packet.urgent_at(),
            options: TcpOptions::parse(packet.options())?,
        })
    }

    /// Length `emit` writes: 20 + the options, 4-byte aligned, at most 60.
    #[inline]
    pub fn header_len(&self) -> usize {
        HEADER_LEN + self.options.emitted_len()
    }

    /// Writes the header and options into the front of `buf` with a zero checksum (fill it
    /// with [`TcpPacket::fill_checksum`] once the payload is in place). Returns
    /// `header_len()`.
    #[inline]
    pub fn emit(&self, buf: &mut [u8]) -> Result<usize, WireError> {
        let hl = self.header_len();
        if buf.len() < hl {
            return Err(WireError::BufferTooSmall);
        }
        let mut p = TcpPacket::new_unchecked(&mut buf[..hl]);
        p.set_src_port(self.src_port);
        p.set_dst_port(self.dst_port);
        p.set_seq_number(self.seq);
        p.set_ack_number(self.ack);
        p.set_header_len(hl);
        p.set_flags(self.flags);
        p.set_window_len(self.window);
        p.set_checksum(0);
        p.set_urgent_at(self.urgent);
        self.options.emit(p.options_mut())?;
        Ok(hl)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn block(l: u32, r: u32) -> SackBlock {
        SackBlock {
            left: SeqNumber(l),
            right: SeqNumber(r),
        }
    }

    #[test]
    fn flags_contains_or_and_debug() {
        let sa = TcpFlags::SYN | TcpFlags::ACK;
        assert!(sa.contains(TcpFlags::SYN));
        assert!(sa.contains(TcpFlags::ACK));
        assert!(sa.contains(TcpFlags::SYN | TcpFlags::ACK));
        assert!(!sa.contains(TcpFlags::SYN | TcpFlags::FIN));
        assert!(sa.intersects(TcpFlags::SYN | TcpFlags::FIN));
        assert!(sa.contains(TcpFlags::empty()));
        assert_eq!(sa.bits(), 0x12);
        assert_eq!(format!("{sa:?}"), "SYN|ACK");
        assert_eq!(format!("{:?}", TcpFlags::empty()), "(none)");
        let all = [
            TcpFlags::FIN,
            TcpFlags::SYN,
            TcpFlags::RST,
            TcpFlags::PSH,
            TcpFlags::ACK,
            TcpFlags::URG,
            TcpFlags::ECE,
            TcpFlags::CWR,
        ];
        let mut acc = TcpFlags::empty();
        for (i, f) in all.iter().enumerate() {
            assert_eq!(f.bits(), 1 << i);
            acc |= *f;
        }
        assert_eq!(acc.bits(), 0xff);
        acc.remove(TcpFlags::RST);
        assert!(!acc.contains(TcpFlags::RST));
        acc.insert(TcpFlags::RST);
        assert_eq!(acc & TcpFlags::RST, TcpFlags::RST);
    }

    #[test]
    fn options_parse_linux_syn_layout() {
        let bytes = [
            2, 4, 0x05, 0xb4, 4, 2, 8, 10, 0, 0, 0, 1, 0, 0, 0, 2, 1, 3, 3, 7,
        ];
        let o = TcpOptions::parse(&bytes).unwrap();
        assert_eq!(o.mss, Some(1460));
        assert!(o.sack_permitted);
        assert_eq!(o.timestamps, Some((1, 2)));
        assert_eq!(o.window_scale, Some(7));
        assert_eq!(o.sack_len, 0);
    }

    #[test]
    fn options_eol_stops_parsing_and_nops_are_skipped() {
        // NOP NOP EOL, then garbage that would be an error if parsed.
        let bytes = [1, 1, 0, 2, 9, 9, 9, 9];
        assert_eq!(TcpOptions::parse(&bytes).unwrap(), TcpOptions::default());
        assert_eq!(TcpOptions::parse(&[]).unwrap(), TcpOptions::default());
        assert_eq!(TcpOptions::parse(&[1; 40]).unwrap(), TcpOptions::default());
    }

    #[test]
    fn options_unknown_kinds_are_skipped_by_length() {
        // kind 30 (MPTCP) len 6, kind 254 (experimental) len 2, then MSS.
        let bytes = [30, 6, 1, 2, 3, 4, 254, 2, 2, 4, 0x02, 0x18];
        let o = TcpOptions::parse(&bytes).unwrap();
        assert_eq!(o.mss, Some(536));
    }

    #[test]
    fn options_sack_records_blocks_in_order() {
        let mut bytes = vec![5, 34];
        for i in 1..=4u32 {
            bytes.extend_from_slice(&(i * 100).to_be_bytes());
            bytes.extend_from_slice(&(i * 100 + 50).to_be_bytes());
        }
        let o = TcpOptions::parse(&bytes).unwrap();
        assert_eq!(o.sack_len, 4);
        assert_eq!(o.sack()[0], block(100, 150));
        assert_eq!(o.sack()[3], block(400, 450));
        // A second SACK option replaces the first entirely.
        bytes.extend_from_slice(&[5, 10, 0, 0, 0, 1, 0, 0, 0, 2]);
        let o = TcpOptions::parse(&bytes).unwrap();
        let mut want = TcpOptions::default();
        want.set_sack(&[block(1, 2)]);
        assert_eq!(o, want);
    }

    #[test]
    fn options_malformed_are_bad_tcp_option() {
        let cases: &[&[u8]] = &[
            &[2],                         // kind without a length byte
            &[30, 0],                     // length below 2
            &[30, 1],                     // length below 2
            &[30, 5, 0, 0],               // runs past the header
            &[2, 3, 0],                   // MSS len 3
            &[2, 5, 0, 0, 0],             // MSS len 5
            &[3, 2],                      // WS len 2
            &[3, 4, 0, 0],                // WS len 4
            &[4, 3, 0],                   // SACK-permitted len 3
            &[8, 9, 0, 0, 0, 0, 0, 0, 0], // TS len 9
            &[5, 2],                      // SACK without blocks
            &[5, 9, 0, 0, 0, 0, 0, 0, 0], // SACK len not 2 + 8n
            &[5, 11, 0, 0, 0, 0, 0, 0, 0, 0, 0],
            &[1, 1, 1, 2, 4], // MSS len 4 past the end
        ];
        for c in cases {
            assert_eq!(TcpOptions::parse(c), Err(WireError::BadTcpOption), "{c:?}");
        }
    }

    #[test]
    fn options_emit_linux_order_and_padding() {
        let syn = TcpOptions {
            mss: Some(1460),
            window_scale: Some(7),
            sack_permitted: true,
            timestamps: Some((1, 2)),
            ..TcpOptions::default()
        };
        let mut buf = [0u8; 40];
        assert_eq!(syn.emit(&mut buf), Ok(20));
        assert_eq!(
            buf[..20],
            [2, 4, 0x05, 0xb4, 4, 2, 8, 10, 0, 0, 0, 1, 0, 0, 0, 2, 1, 3, 3, 7]
        );

        let no_ts = TcpOptions {
            timestamps: None,
            ..syn
        };
        assert_eq!(no_ts.emit(&mut buf), Ok(12));
        assert_eq!(buf[..12], [2, 4, 0x05, 0xb4, 1, 1, 4, 2, 1, 3, 3, 7]);

        let ts_only = TcpOptions {
            timestamps: Some((3, 4)),
            ..TcpOptions::default()
        };
        assert_eq!(ts_only.emit(&mut buf), Ok(12));
        assert_eq!(buf[..12], [1, 1, 8, 10, 0, 0, 0, 3, 0, 0, 0, 4]);

        assert_eq!(TcpOptions::default().emit(&mut buf), Ok(0));
        assert_eq!(syn.emit(&mut buf[..19]), Err(WireError::BufferTooSmall));
    }

    #[test]
    fn options_emit_sack_blocks_up_to_40_bytes() {
        let mut o = TcpOptions {
            timestamps: Some((5, 6)),
            ..TcpOptions::default()
        };
        o.set_sack(&[block(1, 2), block(3, 4), block(5, 6), block(7, 8)]);
        // 12 (TS) + 4 + 3*8 = 40: only three blocks fit beside timestamps.
        assert_eq!(o.emitted_sack_blocks(), 3);
        assert_eq!(o.emitted_len(), 40);
        let mut buf = [0u8; 40];
        assert_eq!(o.emit(&mut buf), Ok(40));
        assert_eq!(buf[12..16], [1, 1, 5, 26]);
        let back = TcpOptions::parse(&buf).unwrap();
        assert_eq!(back.sack(), &o.sack()[..3]);
        assert_eq!(back.timestamps, o.timestamps);

        // Without timestamps all four fit: 4 + 32 = 36.
        o.timestamps = None;
        assert_eq!(o.emitted_len(), 36);
        assert_eq!(o.emit(&mut buf), Ok(36));
        assert_eq!(TcpOptions::parse(&buf[..36]).unwrap(), o);

        // Everything at once: 4 + 12 + 4 = 20 fixed, leaving room for two blocks.
        let full = TcpOptions {
            mss: Some(1000),
            window_scale: Some(14),
            sack_permitted: true,
            timestamps: Some((7, 8)),
            ..o
        };
        assert_eq!(full.emitted_sack_blocks(), 2);
        assert_eq!(full.emitted_len(), 40);
        // A sack_len past 4 is clamped, not trusted.
        let odd = TcpOptions { sack_len: 9, ..o };
        assert_eq!(odd.sack().len(), 4);
        assert_eq!(odd.emitted_len(), 36);
    }

    #[test]
    fn header_emit_then_parse_round_trips() {
        let mut h = TcpHeader {
            src_port: 80,
            dst_port: 54321,
            seq: SeqNumber(0xffff_fff0),
            ack: SeqNumber(0x1a2b_3c4e),
            flags: TcpFlags::SYN | TcpFlags::ACK,
            window: 65535,
            urgent: 0,
            options: TcpOptions {
                mss: Some(1460),
                window_scale: Some(7),
                sack_permitted: true,
                timestamps: Some((10, 0x1234_5678)),
                ..TcpOptions::default()
            },
        };
        h.options.sack_len = 0;
        let mut buf = [0u8; 60];
        let n = h.emit(&mut buf).unwrap();
        assert_eq!(n, h.header_len());
        assert_eq!(n, 40);
        let p = TcpPacket::new_checked(&buf[..n]).unwrap();
        assert_eq!(p.header_len(), 40);
        assert_eq!(p.checksum(), 0);
        assert_eq!(TcpHeader::parse(&p).unwrap(), h);
        assert_eq!(h.emit(&mut buf[..39]), Err(WireError::BufferTooSmall));
    }

    #[test]
    fn packet_length_checks() {
        let mut buf = [0u8; 24];
        assert_eq!(
            TcpPacket::new_checked(&buf[..19]).unwrap_err(),
            WireError::Truncated
        );
        buf[12] = 0x40;
        assert_eq!(
            TcpPacket::new_checked(&buf[..]).unwrap_err(),
            WireError::BadTcpDataOffset
        );
        buf[12] = 0x70;
        assert_eq!(
            TcpPacket::new_checked(&buf[..]).unwrap_err(),
            WireError::BadTcpDataOffset
        );
        buf[12] = 0x60;
        let p = TcpPacket::new_checked(&buf[..]).unwrap();
        assert_eq!(p.options().len(), 4);
        assert!(p.payload().is_empty());
    }
}
