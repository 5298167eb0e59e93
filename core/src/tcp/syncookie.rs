//! SYN cookies (RFC 4987 §3.6): the SYN-ACK's initial sequence number *is* the state,
//! authenticated with a keyed hash, and a connection can be created from the
//! handshake-completing ACK alone. The endpoint's SYN cache (`endpoint/syn_cache.rs`) uses a
//! cookie as the ISN of every SYN-ACK too, so an entry that was evicted or expired still
//! completes here, with the options the cookie could keep.
//!
//! # The cookie (our ISN)
//!
//! ```text
//!  31  30 29    27 26    24  23  22                                                0
//! +------+--------+--------+----+---------------------------------------------------+
//! |epoch |  MSS   | wscale |SACK|  SipHash-2-4[K(epoch)](flow, client ISN, bits     |
//! | & 3  | index  | index  |    |  29-23) low 23 bits                               |
//! +------+--------+--------+----+---------------------------------------------------+
//! ```
//!
//! - `epoch = now / 64 s`. The hash key `K(epoch)` is derived from the secret and the epoch
//!   (SipHash-128 of the epoch under a key derived from the secret), so the effective key
//!   rotates every 64 s with no shared mutable state.
//! - The MSS index points into [`MSS_TABLE`]: the largest entry not above the client's MSS,
//!   536 when it sent none. A client MSS below 536 also gets 536, as in Linux; the engine still
//!   takes the minimum with its own MSS. The same table serves IPv6: an IPv6 client that sent
//!   1200 to 1239 is sent 1200, and one that sent none (RFC 9293's default would be 1220)
//!   or less than 1200 is sent 536, since the index cannot tell them apart and the smaller
//!   choice never exceeds what a client named (RFC 9293 §3.7.1); every real IPv6 stack sends
//!   the option, and only a flood puts clients on cookies.
//! - The wscale index points into [`WSCALE_TABLE`]: 0 = the client offered no window scale,
//!   else the largest shift in the table not above the client's (clamped to 14, RFC 7323
//!   §2.3). Rounding the shift down reads the client's window as smaller than it is: safe,
//!   only slower.
//! - SACK: the client sent SACK-permitted.
//! - The option bits are inside the hash, so an attacker gains nothing by choosing them.
//!
//! So window scaling and SACK survive a client without timestamps (as FreeBSD's cookies,
//! unlike Linux's, which keep them in the TSval). Timestamps no longer carry anything: our
//! TSval is [`SynCookies::ts_clock`] unchanged, and the echoed TSecr is only checked to be no
//! older than a live cookie and not ahead of the clock.
//!
//! # The tables
//!
//! [`MSS_TABLE`] = 536, 1200, 1240, 1360, 1400, 1440, 1460, 8960: 1240 is IPv4 over a path
//! sized for IPv6's 1280-byte minimum (tunnels, some mobile networks), served exactly; 1200
//! takes 1200-1239 (1220, an IPv6-sized MSS, loses 1.6 %); 1360 and 1400 are common IPsec /
//! VPN clamps; 1440 takes PPPoE's 1452 (0.8 % lost) and 1440-1459; 1460 is Ethernet; 8960 is
//! a 9000-byte jumbo frame, exactly. Linux's 4-entry table (536, 1300, 1440, 1460) sent a
//! 1240 client down to 536.
//!
//! [`WSCALE_TABLE`] = 0, 3, 6, 7, 8, 9, 11: exact for the shifts common clients send (macOS
//! and iOS 6, Linux 7 with its default 6 MB `tcp_rmem`, Windows 8, Linux with 16 MB buffers
//! 9) and for 0; 1-2 read as 0, 4-5 as 3, 10 as 9, 12-14 as 11 (at worst the window is read 8
//! times smaller than offered). The SYN cache keeps the exact shift while it has room.
//!
//! # Forgery odds
//!
//! An ACK number is accepted only if its epoch bits name the current or the previous epoch and
//! its 23 hash bits match the hash of its own option bits: a blind attacker who gets the epoch
//! bits right succeeds with probability 2^-23 per guess, so it needs 2^23 (8.4 million)
//! guesses on average per forged connection, 2^24 with random epoch bits (Linux's and
//! FreeBSD's cookies give about 2^24). When the SYN carried timestamps the ACK's TSecr must
//! also echo a recent TSval of a per-flow clock offset the attacker does not know, which is
//! not counted here. `forged_acks_are_accepted_at_two_to_the_minus_mac_bits` measures it.
//!
//! # Validity window
//!
//! A cookie made in epoch `E` is accepted while the current epoch is `E` or `E + 1`: between
//! 64 s and 128 s after it was made, depending on where in epoch `E` that was. A cookie from
//! `E - 2` or `E - 3` is reported as [`CookieError::Expired`] (its hash is checked against that
//! epoch, so forged ACKs do not count as expired); anything older cannot be told apart from a
//! forgery and reads as [`CookieError::BadHash`].
//!
//! Nothing here allocates, reads a clock or panics.

use core::fmt;

use siphasher::sip::SipHasher24;
use siphasher::sip128::SipHasher24 as SipHasher24x128;

use crate::tcp::FlowKey;
use crate::time::{Duration, Instant};
use crate::wire::{IpPair, SeqNumber, TcpOptions};

/// The MSS values a cookie can encode (see the module docs for the choice).
pub const MSS_TABLE: [u16; 8] = [536, 1200, 1240, 1360, 1400, 1440, 1460, 8960];

/// The window scale shifts a cookie can encode, at wscale index 1-7 (0 = none).
pub const WSCALE_TABLE: [u8; 7] = [0, 3, 6, 7, 8, 9, 11];

/// Length of one key epoch. A cookie lives for one to two epochs.
pub const COOKIE_EPOCH: Duration = Duration::from_secs(64);

/// Hash bits in a cookie: the forgery odds are 2^-MAC_BITS per guess.
pub const MAC_BITS: u32 = 23;

const EPOCH_MICROS: u64 = 64_000_000;
const EPOCH_SHIFT: u32 = 30;
const MSS_SHIFT: u32 = 27;
const WSCALE_SHIFT: u32 = 24;
const SACK_BIT: u32 = 1 << 23;
/// The option bits (MSS index, wscale index, SACK) as the hash covers them.
const OPT_SHIFT: u32 = MAC_BITS;
const OPT_MASK: u32 = 0x7F;
const HASH_MASK: u32 = (1 << MAC_BITS) - 1;

/// Largest window scale shift (RFC 7323 §2.3).
const MAX_WINDOW_SCALE: u8 = 14;
/// Oldest TSecr a valid cookie ACK can echo, in ms: two epochs plus one for rounding.
const MAX_TSECR_AGE_MS: u32 = 2 * 64_000 + 1;

/// What the client's SYN asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct CookieRequest {
    pub mss: Option<u16>,
    /// The shift as sent (values above 14 are clamped to 14).
    pub window_scale: Option<u8>,
    pub sack_permitted: bool,
    /// The SYN's TSval, if it carried the timestamps option.
    pub tsval: Option<u32>,
}

impl CookieRequest {
    /// What a SYN with these options asks for.
    pub fn of_syn(options: &TcpOptions) -> CookieRequest {
        CookieRequest {
            mss: options.mss,
            window_scale: options.window_scale,
            sack_permitted: options.sack_permitted,
            tsval: options.timestamps.map(|(v, _)| v),
        }
    }

    /// Whether the SYN-ACK answers with a window scale option: whenever the client offered
    /// one (the cookie carries it, timestamps or not). Returns the client's shift, clamped to
    /// 14.
    pub fn offered_window_scale(&self) -> Option<u8> {
        self.window_scale.map(|ws| ws.min(MAX_WINDOW_SCALE))
    }

    /// Whether the SYN-ACK answers with SACK-permitted: whenever the client offered it.
    pub fn offered_sack(&self) -> bool {
        self.sack_permitted
    }

    /// The MSS the cookie will encode: the largest [`MSS_TABLE`] entry not above the client's.
    pub fn cookie_mss(&self) -> u16 {
        MSS_TABLE[usize::from(mss_index(self.mss))]
    }

    /// The client's shift as the cookie will encode it: the largest [`WSCALE_TABLE`] entry not
    /// above the offered one.
    pub fn cookie_window_scale(&self) -> Option<u8> {
        wscale_of_index(wscale_index(self.offered_window_scale()))
    }
}

/// What to put in the SYN-ACK.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SynCookie {
    /// Our initial sequence number: the cookie.
    pub isn: SeqNumber,
    /// The MSS the connection will send with (from [`MSS_TABLE`]); not our MSS option.
    pub mss: u16,
    /// Our TSval ([`SynCookies::ts_clock`]), when the SYN had timestamps.
    pub tsval: Option<u32>,
}

/// What a valid handshake-completing ACK establishes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CookieParams {
    /// Send MSS from the cookie (take the minimum with the engine's own).
    pub mss: u16,
    /// The client's window scale shift from [`WSCALE_TABLE`]; `None` = no window scaling
    /// either way.
    pub window_scale: Option<u8>,
    pub sack_permitted: bool,
    /// Timestamps in use (the ACK echoed our TSval).
    pub timestamps: bool,
    /// Our ISN (`seg_ack - 1`).
    pub isn: SeqNumber,
    /// The client's ISN (`seg_seq - 1`).
    pub client_isn: SeqNumber,
}

/// Why an ACK for an unknown flow is not a valid cookie.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum CookieError {
    /// The ACK number is not a cookie we issued for this flow and client ISN.
    #[error("SYN cookie hash mismatch")]
    BadHash,
    /// A genuine cookie, but older than the validity window.
    #[error("SYN cookie expired")]
    Expired,
    /// TSecr ahead of our timestamp clock or older than any valid cookie.
    #[error("SYN cookie timestamp invalid")]
    BadTimestamp,
}

/// Stateless SYN cookie maker and checker, and the timestamp clock; see the module docs.
#[derive(Clone)]
pub struct SynCookies {
    /// Derives the per-epoch cookie key.
    epoch_kdf: SipHasher24x128,
    /// Keys the per-flow timestamp offset.
    ts_offset_key: SipHasher24,
}

impl fmt::Debug for SynCookies {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The keys stay out of logs.
        f.write_str("SynCookies { .. }")
    }
}

impl SynCookies {
    /// Derives every key from `secret` (all 32 bytes count). The same secret gives the same
    /// cookies and timestamp clock, so a restarted process with the same secret still accepts
    /// the cookies it issued before.
    pub fn new(secret: [u8; 32]) -> Self {
        let mut k = [0u8; 16];
        k.copy_from_slice(&secret[..16]);
        let root = SipHasher24x128::new_with_key(&k);
        let derive = |label: &[u8; 16]| {
            let mut msg = [0u8; 32];
            msg[..16].copy_from_slice(&secret[16..]);
            msg[16..].copy_from_slice(label);
            let h = root.hash(&msg);
            (h.h1, h.h2)
        };
        let (a, b) = derive(b"xgate cookie kdf");
        let (c, d) = derive(b"xgate ts offset ");
        SynCookies {
            epoch_kdf: SipHasher24x128::new_with_keys(a, b),
            ts_offset_key: SipHasher24::new_with_keys(c, d),
        }
    }

    /// Our RFC 7323 timestamp clock for `flow`: milliseconds plus a per-flow offset derived from
    /// the secret, so TSvals neither reveal uptime nor correlate across flows. The engine uses
    /// this for every TSval of the connection after the handshake too.
    pub fn ts_clock(&self, now: Instant, flow: &FlowKey) -> u32 {
        // The clock is modulo 2^32 ms (RFC 7323 §5.4): truncation is intended.
        (now.as_millis() as u32).wrapping_add(self.ts_offset(flow))
    }

    /// The per-flow part of [`ts_clock`](Self::ts_clock): `ts_clock(now, flow) ==
    /// (now.as_millis() as u32).wrapping_add(ts_offset(flow))`. A connection can keep it to
    /// avoid hashing for every segment.
    pub fn ts_offset(&self, flow: &FlowKey) -> u32 {
        let (bytes, len) = flow_bytes(flow);
        self.ts_offset_key.hash(&bytes[..len]) as u32
    }

    /// The SYN-ACK's ISN, send MSS and TSval for a SYN from `flow` with sequence number
    /// `client_isn`.
    pub fn generate(
        &self,
        now: Instant,
        flow: &FlowKey,
        client_isn: SeqNumber,
        req: &CookieRequest,
    ) -> SynCookie {
        let epoch = epoch_of(now);
        let mss_idx = mss_index(req.mss);
        let opts = (u32::from(mss_idx) << (MSS_SHIFT - OPT_SHIFT))
            | (u32::from(wscale_index(req.offered_window_scale())) << (WSCALE_SHIFT - OPT_SHIFT))
            | if req.offered_sack() {
                SACK_BIT >> OPT_SHIFT
            } else {
                0
            };
        let hash = self.hash(epoch, flow, client_isn, opts);
        let isn = ((epoch as u32 & 3) << EPOCH_SHIFT) | (opts << OPT_SHIFT) | hash;
        SynCookie {
            isn: SeqNumber(isn),
            mss: flow.peer_mss(Some(MSS_TABLE[usize::from(mss_idx)])),
            tsval: req.tsval.map(|_| self.ts_clock(now, flow)),
        }
    }

    /// Checks the handshake-completing ACK (ACK set, SYN/RST clear) of a flow with no state:
    /// `seg_seq - 1` must be the client ISN and `seg_ack - 1` a cookie issued for it within the
    /// validity window. `tsecr` is the ACK's TSecr if it carried timestamps.
    pub fn validate(
        &self,
        now: Instant,
        flow: &FlowKey,
        seg_seq: SeqNumber,
        seg_ack: SeqNumber,
        tsecr: Option<u32>,
    ) -> Result<CookieParams, CookieError> {
        let client_isn = seg_seq - 1u32;
        let isn = seg_ack - 1u32;
        let current = epoch_of(now);
        let age = u64::from((current as u32).wrapping_sub(isn.0 >> EPOCH_SHIFT) & 3);
        // No cookie can come from before epoch 0.
        let epoch = current.checked_sub(age).ok_or(CookieError::BadHash)?;
        let opts = (isn.0 >> OPT_SHIFT) & OPT_MASK;
        let expected = self.hash(epoch, flow, client_isn, opts);
        // One comparison of the whole value, no early out per byte.
        if (expected ^ isn.0) & HASH_MASK != 0 {
            return Err(CookieError::BadHash);
        }
        if age > 1 {
            return Err(CookieError::Expired);
        }
        if let Some(ecr) = tsecr {
            let lag = self.ts_clock(now, flow).wrapping_sub(ecr);
            // Ahead of the clock (lag "negative") or older than any live cookie.
            if lag > MAX_TSECR_AGE_MS {
                return Err(CookieError::BadTimestamp);
            }
        }
        Ok(CookieParams {
            mss: flow.peer_mss(Some(cookie_mss_of(isn))),
            window_scale: wscale_of_index(((isn.0 >> WSCALE_SHIFT) & 7) as u8),
            sack_permitted: isn.0 & SACK_BIT != 0,
            timestamps: tsecr.is_some(),
            isn,
            client_isn,
        })
    }

    /// The low [`MAC_BITS`] bits of SipHash-2-4 under the epoch's key.
    fn hash(&self, epoch: u64, flow: &FlowKey, client_isn: SeqNumber, opts: u32) -> u32 {
        let key = self.epoch_kdf.hash(&epoch.to_le_bytes());
        let (bytes, len) = flow_bytes(flow);
        let mut msg = [0u8; FLOW_BYTES_MAX + 5];
        msg[..len].copy_from_slice(&bytes[..len]);
        msg[len..len + 4].copy_from_slice(&client_isn.0.to_be_bytes());
        msg[len + 4] = (opts & OPT_MASK) as u8;
        (SipHasher24::new_with_keys(key.h1, key.h2).hash(&msg[..len + 5]) as u32) & HASH_MASK
    }
}

/// The [`MSS_TABLE`] entry a cookie ISN names (whether or not it validates).
pub fn cookie_mss_of(isn: SeqNumber) -> u16 {
    MSS_TABLE[((isn.0 >> MSS_SHIFT) & 7) as usize]
}

fn epoch_of(now: Instant) -> u64 {
    now.as_micros() / EPOCH_MICROS
}

/// Index of the largest [`MSS_TABLE`] entry not above `mss`; 0 (536) when absent or smaller.
fn mss_index(mss: Option<u16>) -> u8 {
    let mss = mss.unwrap_or(0);
    MSS_TABLE
        .iter()
        .rposition(|&m| m <= mss)
        .map_or(0, |i| i as u8)
}

/// 0 for no window scaling, else 1 + the index of the largest [`WSCALE_TABLE`] entry not above
/// `ws` (the table starts at 0, so there is one).
fn wscale_index(ws: Option<u8>) -> u8 {
    ws.map_or(0, |ws| {
        WSCALE_TABLE
            .iter()
            .rposition(|&w| w <= ws)
            .map_or(1, |i| i as u8 + 1)
    })
}

fn wscale_of_index(idx: u8) -> Option<u8> {
    WSCALE_TABLE.get(usize::from(idx).checked_sub(1)?).copied()
}

/// Longest [`flow_bytes`]: two IPv6 addresses and two ports.
const FLOW_BYTES_MAX: usize = 36;

/// What the keyed hashes take of a flow: local address and port, remote address and port, the
/// full addresses of either family (12 bytes for IPv4 as before IPv6 existed, so IPv4 cookies
/// and timestamp offsets are unchanged; 36 for IPv6). The lengths differ, so no IPv4 flow's
/// input is an IPv6 flow's.
fn flow_bytes(flow: &FlowKey) -> ([u8; FLOW_BYTES_MAX], usize) {
    let mut b = [0u8; FLOW_BYTES_MAX];
    let mut at = 0;
    let mut put = |bytes: &[u8]| {
        b[at..at + bytes.len()].copy_from_slice(bytes);
        at += bytes.len();
    };
    match flow.outbound_ips() {
        IpPair::V4 { src, dst } => {
            put(&src.octets());
            put(&flow.local_port().to_be_bytes());
            put(&dst.octets());
        }
        IpPair::V6 { src, dst } => {
            put(&src.octets());
            put(&flow.local_port().to_be_bytes());
            put(&dst.octets());
        }
    }
    put(&flow.remote_port().to_be_bytes());
    (b, at)
}

#[cfg(test)]
mod tests {
    use super::*;
    use core::net::{Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4};
    use proptest::prelude::*;

    const SECRET: [u8; 32] = *b"0123456789abcdef0123456789ABCDEF";

    fn flow() -> FlowKey {
        FlowKey::new_v4(
            SocketAddrV4::new(Ipv4Addr::new(10, 0, 0, 1), 80),
            SocketAddrV4::new(Ipv4Addr::new(10, 0, 0, 2), 40000),
        )
    }

    /// The two sides of an IPv4 key.
    fn sides_v4(f: &FlowKey) -> (SocketAddrV4, SocketAddrV4) {
        match (f.local(), f.remote()) {
            (SocketAddr::V4(l), SocketAddr::V4(r)) => (l, r),
            other => unreachable!("an IPv4 key: {other:?}"),
        }
    }

    fn at_secs(s: u64) -> Instant {
        Instant::from_secs(s)
    }

    /// Epoch 100, a little way in.
    fn t0() -> Instant {
        Instant::from_micros(100 * EPOCH_MICROS + 1_234_567)
    }

    fn req(mss: Option<u16>, ws: Option<u8>, sack: bool, ts: bool) -> CookieRequest {
        CookieRequest {
            mss,
            window_scale: ws,
            sack_permitted: sack,
            tsval: ts.then_some(0xDEAD_BEEF),
        }
    }

    /// The params a correct cookie round trip must produce for `r`.
    fn expected(r: &CookieRequest, c: &SynCookie, cisn: SeqNumber) -> CookieParams {
        CookieParams {
            mss: r.cookie_mss(),
            window_scale: r.cookie_window_scale(),
            sack_permitted: r.offered_sack(),
            timestamps: r.tsval.is_some(),
            isn: c.isn,
            client_isn: cisn,
        }
    }

    fn ack_for(
        sc: &SynCookies,
        now: Instant,
        f: &FlowKey,
        cisn: SeqNumber,
        c: &SynCookie,
    ) -> Result<CookieParams, CookieError> {
        sc.validate(now, f, cisn + 1u32, c.isn + 1u32, c.tsval)
    }

    #[test]
    fn mss_buckets() {
        let cases = [
            (None, 536),
            (Some(0), 536),
            (Some(100), 536),
            (Some(536), 536),
            (Some(1199), 536),
            (Some(1200), 1200),
            (Some(1220), 1200),
            (Some(1239), 1200),
            (Some(1240), 1240),
            (Some(1300), 1240),
            (Some(1360), 1360),
            (Some(1380), 1360),
            (Some(1400), 1400),
            (Some(1440), 1440),
            (Some(1452), 1440),
            (Some(1459), 1440),
            (Some(1460), 1460),
            (Some(8959), 1460),
            (Some(8960), 8960),
            (Some(9000), 8960),
            (Some(u16::MAX), 8960),
        ];
        for (mss, want) in cases {
            let r = req(mss, None, false, false);
            assert_eq!(r.cookie_mss(), want, "{mss:?}");
        }
    }

    #[test]
    fn wscale_buckets() {
        let cases = [
            (None, None),
            (Some(0), Some(0)),
            (Some(2), Some(0)),
            (Some(3), Some(3)),
            (Some(5), Some(3)),
            (Some(6), Some(6)),
            (Some(7), Some(7)),
            (Some(8), Some(8)),
            (Some(9), Some(9)),
            (Some(10), Some(9)),
            (Some(11), Some(11)),
            (Some(14), Some(11)),
            (Some(255), Some(11)),
        ];
        for (ws, want) in cases {
            let r = req(None, ws, false, false);
            assert_eq!(r.cookie_window_scale(), want, "{ws:?}");
        }
    }

    #[test]
    fn round_trip_every_mss_wscale_and_sack_combination_with_and_without_timestamps() {
        let sc = SynCookies::new(SECRET);
        let f = flow();
        let cisn = SeqNumber(0xFFFF_FFFF); // seg_seq wraps to 0
        let mut mss_cases: Vec<Option<u16>> = MSS_TABLE.iter().map(|&m| Some(m)).collect();
        mss_cases.extend([None, Some(100), Some(1220), Some(9000)]);
        let mut ws_cases: Vec<Option<u8>> = (0..=15).map(Some).collect();
        ws_cases.extend([None, Some(255)]);
        let mut seen = std::collections::HashSet::new();
        for &mss in &mss_cases {
            for &ws in &ws_cases {
                for sack in [false, true] {
                    for ts in [false, true] {
                        let r = req(mss, ws, sack, ts);
                        let c = sc.generate(t0(), &f, cisn, &r);
                        assert_eq!(c.mss, r.cookie_mss());
                        assert_eq!(c.tsval.is_some(), ts);
                        let got = ack_for(&sc, t0() + Duration::from_millis(40), &f, cisn, &c);
                        assert_eq!(got, Ok(expected(&r, &c, cisn)), "{r:?}");
                        let p = got.unwrap();
                        // Timestamps or not, the options survive.
                        assert_eq!(p.window_scale.is_some(), ws.is_some());
                        assert_eq!(p.sack_permitted, sack);
                        if let Some(m) = mss.filter(|m| MSS_TABLE.contains(m)) {
                            assert_eq!(p.mss, m, "table entries are exact");
                        }
                        seen.insert((p.mss, p.window_scale, p.sack_permitted));
                    }
                }
            }
        }
        // Every one of the 8 * 8 * 2 encodable combinations was produced and read back.
        assert_eq!(seen.len(), 8 * 8 * 2);
    }

    #[test]
    fn isn_layout_encodes_epoch_mss_wscale_and_sack() {
        let sc = SynCookies::new(SECRET);
        for (e, mss, ws, sack, mss_idx, ws_idx) in [
            (100u64, 1460, None, false, 6u32, 0u32),
            (101, 536, Some(0), true, 0, 1),
            (102, 1240, Some(7), false, 2, 4),
            (103, 8960, Some(14), true, 7, 7),
        ] {
            let now = Instant::from_micros(e * EPOCH_MICROS);
            let c = sc.generate(now, &flow(), SeqNumber(1), &req(Some(mss), ws, sack, false));
            assert_eq!(c.isn.0 >> 30, (e & 3) as u32);
            assert_eq!((c.isn.0 >> 27) & 7, mss_idx);
            assert_eq!((c.isn.0 >> 24) & 7, ws_idx);
            assert_eq!((c.isn.0 >> 23) & 1, u32::from(sack));
            assert_eq!(cookie_mss_of(c.isn), mss);
        }
    }

    #[test]
    fn wrong_flow_client_isn_or_tampered_ack_is_bad_hash() {
        let sc = SynCookies::new(SECRET);
        let f = flow();
        let cisn = SeqNumber(12345);
        let c = sc.generate(t0(), &f, cisn, &req(Some(1460), Some(7), true, true));
        let now = t0() + Duration::from_secs(1);
        assert!(ack_for(&sc, now, &f, cisn, &c).is_ok());

        let (local, remote) = sides_v4(&f);
        let other_flows = [
            FlowKey::new_v4(SocketAddrV4::new(Ipv4Addr::new(10, 0, 0, 9), 80), remote),
            FlowKey::new_v4(SocketAddrV4::new(*local.ip(), 81), remote),
            FlowKey::new_v4(local, SocketAddrV4::new(Ipv4Addr::new(10, 0, 0, 3), 40000)),
            FlowKey::new_v4(local, SocketAddrV4::new(*remote.ip(), 40001)),
            FlowKey::new_v4(remote, local),
        ];
        for g in other_flows {
            assert_eq!(
                ack_for(&sc, now, &g, cisn, &c),
                Err(CookieError::BadHash),
                "{g:?}"
            );
        }
        for wrong in [cisn + 1u32, cisn - 1u32, SeqNumber(0)] {
            let got = sc.validate(now, &f, wrong + 1u32, c.isn + 1u32, c.tsval);
            assert_eq!(got, Err(CookieError::BadHash));
        }
        // Every single-bit change of the ACK number, including epoch and option bits: an
        // attacker cannot upgrade the options of a genuine cookie.
        for bit in 0..32 {
            let ack = SeqNumber((c.isn.0 ^ (1 << bit)).wrapping_add(1));
            let got = sc.validate(now, &f, cisn + 1u32, ack, c.tsval);
            assert_eq!(got, Err(CookieError::BadHash), "bit {bit}");
        }
        // Another secret does not accept it.
        let other = SynCookies::new([7; 32]);
        assert_eq!(
            ack_for(&other, now, &f, cisn, &c).map(|_| ()),
            Err(CookieError::BadHash)
        );
    }

    /// The forgery odds the module doc states: with the epoch bits right (the attacker's best
    /// case), a random ACK number is accepted with probability 2^-MAC_BITS. 2^20 forged ACKs
    /// with random option and hash bits are checked against one fixed cookie state; the
    /// matches in the low k hash bits are counted for k = 8, 12, 16 (expected 2^(20-k):
    /// the hash is uniform in the bits `validate` compares) and `validate`'s acceptances
    /// (expected 2^(20-23) = 1/8). The bound (at most 1) fails with certainty if the MAC were
    /// 16 bits (16 expected) and most likely at 18 (4 expected).
    #[test]
    fn forged_acks_are_accepted_at_two_to_the_minus_mac_bits() {
        const N: u32 = 1 << 20;
        let sc = SynCookies::new(SECRET);
        let f = flow();
        let now = t0();
        let cisn = SeqNumber(0x1234_5678);
        let epoch = epoch_of(now);
        let epoch_bits = (epoch as u32 & 3) << EPOCH_SHIFT;
        // A fixed xorshift stream: the test is deterministic.
        let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
        let mut low_matches = [0u32; 3];
        let mut accepted = 0u32;
        for _ in 0..N {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let guess = epoch_bits | (x as u32 & !(3 << EPOCH_SHIFT));
            let real = sc.hash(epoch, &f, cisn, (guess >> OPT_SHIFT) & OPT_MASK);
            for (i, k) in [8u32, 12, 16].into_iter().enumerate() {
                if (real ^ guess) & ((1 << k) - 1) == 0 {
                    low_matches[i] += 1;
                }
            }
            let ok = sc
                .validate(now, &f, cisn + 1u32, SeqNumber(guess) + 1u32, None)
                .is_ok();
            assert_eq!(ok, (real ^ guess) & HASH_MASK == 0);
            accepted += u32::from(ok);
        }
        // Expected 4096, 256, 16: within 5 standard deviations (Poisson).
        for (got, expected) in low_matches.into_iter().zip([4096.0f64, 256.0, 16.0]) {
            let sd = expected.sqrt();
            assert!(
                (f64::from(got) - expected).abs() <= 5.0 * sd + 1.0,
                "{got} vs {expected}"
            );
        }
        const { assert!(MAC_BITS >= 23) };
        assert!(accepted <= 1, "{accepted} of 2^20 forged ACKs accepted");
    }

    #[test]
    fn previous_epoch_accepted_then_expired() {
        let sc = SynCookies::new(SECRET);
        let f = flow();
        let cisn = SeqNumber(777);
        let e = 100u64;
        // Made in the last microsecond of epoch e.
        let made = Instant::from_micros((e + 1) * EPOCH_MICROS - 1);
        let c = sc.generate(made, &f, cisn, &req(Some(1440), None, true, false));
        let epoch_start = |k: u64| Instant::from_micros(k * EPOCH_MICROS);
        assert!(ack_for(&sc, made, &f, cisn, &c).is_ok());
        assert!(ack_for(&sc, epoch_start(e + 1), &f, cisn, &c).is_ok());
        let last_valid = Instant::from_micros((e + 2) * EPOCH_MICROS - 1);
        assert!(ack_for(&sc, last_valid, &f, cisn, &c).is_ok());
        assert_eq!(
            ack_for(&sc, epoch_start(e + 2), &f, cisn, &c),
            Err(CookieError::Expired)
        );
        assert_eq!(
            ack_for(&sc, epoch_start(e + 3), &f, cisn, &c),
            Err(CookieError::Expired)
        );
        // Four epochs on, the epoch bits have wrapped: indistinguishable from a forgery.
        assert_eq!(
            ack_for(&sc, epoch_start(e + 4), &f, cisn, &c),
            Err(CookieError::BadHash)
        );
        // A cookie claiming an epoch before zero.
        let early = sc.generate(epoch_start(3), &f, cisn, &req(None, None, false, false));
        assert_eq!(
            ack_for(&sc, at_secs(0), &f, cisn, &early),
            Err(CookieError::BadHash)
        );
    }

    #[test]
    fn epoch_bits_roll_over_from_3_to_0() {
        let sc = SynCookies::new(SECRET);
        let f = flow();
        let cisn = SeqNumber(4242);
        // Epoch 103 has bits 3; epoch 104 has bits 0 and still accepts it.
        let made = Instant::from_micros(103 * EPOCH_MICROS + 5);
        let c = sc.generate(made, &f, cisn, &req(Some(1240), Some(8), true, false));
        assert_eq!(c.isn.0 >> 30, 3);
        let next = Instant::from_micros(104 * EPOCH_MICROS + 5);
        let p = ack_for(&sc, next, &f, cisn, &c).unwrap();
        assert_eq!(
            (p.mss, p.window_scale, p.sack_permitted),
            (1240, Some(8), true)
        );
        let fresh = sc.generate(next, &f, cisn, &req(Some(1240), Some(8), true, false));
        assert_eq!(fresh.isn.0 >> 30, 0);
        assert_eq!(
            ack_for(&sc, Instant::from_micros(105 * EPOCH_MICROS), &f, cisn, &c),
            Err(CookieError::Expired)
        );
    }

    #[test]
    fn forged_ack_with_old_epoch_bits_is_bad_hash_not_expired() {
        let sc = SynCookies::new(SECRET);
        let now = t0();
        let cur = (epoch_of(now) & 3) as u32;
        for age in 0..4u32 {
            let bits = cur.wrapping_sub(age) & 3;
            let ack = SeqNumber((bits << 30 | 0x0ABC_DEF0).wrapping_add(1));
            let got = sc.validate(now, &flow(), SeqNumber(1), ack, None);
            assert_eq!(got, Err(CookieError::BadHash), "age {age}");
        }
    }

    #[test]
    fn tsval_is_the_ts_clock() {
        let sc = SynCookies::new(SECRET);
        let f = flow();
        for ms in 0..100u64 {
            let now = Instant::from_millis(1_000_000 + ms);
            for ws in [None, Some(0), Some(5), Some(14)] {
                for sack in [false, true] {
                    let c = sc.generate(now, &f, SeqNumber(9), &req(None, ws, sack, true));
                    assert_eq!(c.tsval, Some(sc.ts_clock(now, &f)));
                }
            }
        }
    }

    #[test]
    fn ts_clock_counts_milliseconds_with_a_per_flow_offset() {
        let sc = SynCookies::new(SECRET);
        let f = flow();
        let (local, remote) = sides_v4(&f);
        let g = FlowKey::new_v4(local, SocketAddrV4::new(*remote.ip(), 40001));
        let a = sc.ts_clock(at_secs(10), &f);
        assert_eq!(
            sc.ts_clock(at_secs(10) + Duration::from_millis(1500), &f),
            a.wrapping_add(1500)
        );
        assert_eq!(sc.ts_clock(at_secs(10) + Duration::from_micros(999), &f), a);
        assert_ne!(a, sc.ts_clock(at_secs(10), &g), "offset differs per flow");
        assert_ne!(a, 10_000, "the offset hides uptime");
        assert_eq!(a, 10_000u32.wrapping_add(sc.ts_offset(&f)));
        assert_ne!(a, SynCookies::new([1; 32]).ts_clock(at_secs(10), &f));
        // Same secret, same clock (a restart with the same secret keeps TSvals monotonic).
        assert_eq!(a, SynCookies::new(SECRET).ts_clock(at_secs(10), &f));
    }

    #[test]
    fn bad_timestamps_are_refused() {
        let sc = SynCookies::new(SECRET);
        let f = flow();
        let cisn = SeqNumber(42);
        let c = sc.generate(t0(), &f, cisn, &req(Some(1460), Some(7), true, true));
        let ts = c.tsval.unwrap();
        let (seq, ack) = (cisn + 1u32, c.isn + 1u32);
        let now = t0() + Duration::from_secs(2);
        assert!(sc.validate(now, &f, seq, ack, Some(ts)).is_ok());
        // Ahead of our clock.
        let ahead = sc.ts_clock(now, &f).wrapping_add(64);
        assert_eq!(
            sc.validate(now, &f, seq, ack, Some(ahead)),
            Err(CookieError::BadTimestamp)
        );
        // Far in the past: no live cookie can be that old.
        let old = ts.wrapping_sub(200_000);
        assert_eq!(
            sc.validate(now, &f, seq, ack, Some(old)),
            Err(CookieError::BadTimestamp)
        );
        // No timestamps in the ACK: no timestamps, but window scale and SACK stay.
        let p = sc.validate(now, &f, seq, ack, None).unwrap();
        assert!(!p.timestamps);
        assert_eq!((p.window_scale, p.sack_permitted), (Some(7), true));
        assert_eq!(p.mss, 1460);
    }

    #[test]
    fn request_helpers() {
        let r = req(Some(1400), Some(20), true, false);
        assert_eq!(
            (r.offered_window_scale(), r.offered_sack()),
            (Some(14), true)
        );
        assert_eq!(r.cookie_window_scale(), Some(11));
        assert_eq!(r.cookie_mss(), 1400);
        let r = req(Some(1400), None, false, true);
        assert_eq!((r.offered_window_scale(), r.offered_sack()), (None, false));
        assert_eq!(
            format!("{:?}", SynCookies::new(SECRET)),
            "SynCookies { .. }"
        );
    }

    fn flow_v6() -> FlowKey {
        FlowKey::new(
            "[2001:db8::1]:80".parse().unwrap(),
            "[2001:db8:ffff::2]:40000".parse().unwrap(),
        )
        .unwrap()
    }

    /// RFC 9293 §3.7.1: over IPv6 a cookie never sends more than the SYN's MSS option: the
    /// table as for IPv4 (a client of 1200 to 1239 gets 1200, not the IPv6 default 1220).
    #[test]
    fn ipv6_cookies_never_exceed_the_clients_mss() {
        let sc = SynCookies::new(SECRET);
        let f = flow_v6();
        let cisn = SeqNumber(777);
        for (mss, want) in [
            (None, 536),
            (Some(536), 536),
            (Some(1199), 536),
            (Some(1200), 1200),
            (Some(1220), 1200),
            (Some(1239), 1200),
            (Some(1240), 1240),
            (Some(1440), 1440),
            (Some(9000), 8960),
        ] {
            let c = sc.generate(t0(), &f, cisn, &req(mss, None, false, false));
            assert_eq!(c.mss, want, "{mss:?}");
            let p = ack_for(&sc, t0(), &f, cisn, &c).unwrap();
            assert_eq!(p.mss, want, "{mss:?}");
            // An IPv4 flow keeps the table's 536 floor.
            let c4 = sc.generate(t0(), &flow(), cisn, &req(mss, None, false, false));
            assert_eq!(c4.mss, req(mss, None, false, false).cookie_mss());
        }
    }

    /// The keyed hashes take all 16 bytes of each IPv6 address, and an IPv4 flow's input is
    /// still its 12 bytes (local address, local port, remote address, remote port), so cookies
    /// and timestamp offsets of IPv4 flows did not change with IPv6.
    #[test]
    fn flow_bytes_hold_whole_addresses_of_either_family() {
        let (b, n) = flow_bytes(&flow());
        assert_eq!(&b[..n], &[10, 0, 0, 1, 0, 80, 10, 0, 0, 2, 0x9c, 0x40]);
        let (b, n) = flow_bytes(&flow_v6());
        assert_eq!(n, 36);
        let local: Ipv6Addr = "2001:db8::1".parse().unwrap();
        let remote: Ipv6Addr = "2001:db8:ffff::2".parse().unwrap();
        assert_eq!(&b[..16], &local.octets());
        assert_eq!(&b[16..18], &80u16.to_be_bytes());
        assert_eq!(&b[18..34], &remote.octets());
        assert_eq!(&b[34..36], &40000u16.to_be_bytes());
        let sc = SynCookies::new(SECRET);
        let cisn = SeqNumber(5);
        let c = sc.generate(
            t0(),
            &flow_v6(),
            cisn,
            &req(Some(1440), Some(7), true, true),
        );
        let now = t0() + Duration::from_secs(1);
        assert!(ack_for(&sc, now, &flow_v6(), cisn, &c).is_ok());
        // The same ports and the IPv4-mapped form of other addresses: another flow.
        let mapped = FlowKey::new(
            "[::ffff:10.0.0.1]:80".parse().unwrap(),
            "[::ffff:10.0.0.2]:40000".parse().unwrap(),
        )
        .unwrap();
        let c4 = sc.generate(t0(), &flow(), cisn, &req(Some(1440), Some(7), true, true));
        assert_eq!(
            ack_for(&sc, now, &mapped, cisn, &c4),
            Err(CookieError::BadHash)
        );
    }

    /// Flows of either family.
    fn arb_flow() -> impl Strategy<Value = FlowKey> {
        let v4 =
            (any::<u32>(), any::<u16>(), any::<u32>(), any::<u16>()).prop_map(|(a, p, b, q)| {
                FlowKey::new_v4(
                    SocketAddrV4::new(Ipv4Addr::from(a), p),
                    SocketAddrV4::new(Ipv4Addr::from(b), q),
                )
            });
        let v6 =
            (any::<u128>(), any::<u16>(), any::<u128>(), any::<u16>()).prop_map(|(a, p, b, q)| {
                FlowKey::new(
                    SocketAddr::from((Ipv6Addr::from_bits(a), p)),
                    SocketAddr::from((Ipv6Addr::from_bits(b), q)),
                )
                .expect("one family")
            });
        prop_oneof![v4, v6]
    }

    fn arb_req() -> impl Strategy<Value = CookieRequest> {
        (
            proptest::option::of(any::<u16>()),
            proptest::option::of(any::<u8>()),
            any::<bool>(),
            proptest::option::of(any::<u32>()),
        )
            .prop_map(|(mss, window_scale, sack_permitted, tsval)| CookieRequest {
                mss,
                window_scale,
                sack_permitted,
                tsval,
            })
    }

    proptest! {
        #[test]
        fn validate_inverts_generate_within_the_window(
            f in arb_flow(),
            cisn in any::<u32>(),
            r in arb_req(),
            made in 0..(1u64 << 48),
            delay_frac in 0.0..1.0f64,
        ) {
            let sc = SynCookies::new(SECRET);
            let made = Instant::from_micros(made);
            // Any instant from `made` to the end of the next epoch.
            let end = (epoch_of(made) + 2) * EPOCH_MICROS;
            let span = end - made.as_micros();
            let delay = ((span as f64 * delay_frac) as u64).min(span - 1);
            let now = made + Duration::from_micros(delay);
            let cisn = SeqNumber(cisn);
            let c = sc.generate(made, &f, cisn, &r);
            let clock_then = sc.ts_clock(made, &f);
            if r.tsval.is_some() {
                prop_assert_eq!(c.tsval, Some(clock_then));
            }
            // The table's MSS, in either family (`FlowKey::peer_mss`).
            let want = CookieParams { mss: f.peer_mss(Some(r.cookie_mss())), ..expected(&r, &c, cisn) };
            prop_assert_eq!(ack_for(&sc, now, &f, cisn, &c), Ok(want));
            // Two epochs later it is expired.
            let later = Instant::from_micros(end);
            prop_assert_eq!(ack_for(&sc, later, &f, cisn, &c), Err(CookieError::Expired));
        }
    }
}
