//! SYN cookies (RFC 4987 §3.6): the server answers every SYN without keeping any state; the
//! SYN-ACK's initial sequence number *is* the state, authenticated with a keyed hash, and the
//! connection is created only when the handshake-completing ACK returns it.
//!
//! # The cookie (our ISN)
//!
//! ```text
//!  31  30 29  28 27                                                     0
//! +------+------+---------------------------------------------------------+
//! |epoch | MSS  |  SipHash-2-4[K(epoch)](flow, client ISN, MSS index)     |
//! | & 3  | index|  low 28 bits                                            |
//! +------+------+---------------------------------------------------------+
//! ```
//!
//! - `epoch = now / 64 s`. The hash key `K(epoch)` is derived from the secret and the epoch
//!   (SipHash-128 of the epoch under a key derived from the secret), so the effective key
//!   rotates every 64 s with no shared mutable state.
//! - The MSS index points into [`MSS_TABLE`] (Linux's IPv4 table): the largest entry not above
//!   the client's MSS, 536 when it sent none. A client MSS below 536 also gets 536, as in
//!   Linux; the engine still takes the minimum with its own MSS.
//! - 28 hash bits: a blind attacker must guess 2^28 ACKs on average per forged connection.
//!
//! # Validity window
//!
//! A cookie made in epoch `E` is accepted while the current epoch is `E` or `E + 1`: between
//! 64 s and 128 s after it was made, depending on where in epoch `E` that was. A cookie from
//! `E - 2` or `E - 3` is reported as [`CookieError::Expired`] (its hash is checked against that
//! epoch, so forged ACKs do not count as expired); anything older cannot be told apart from a
//! forgery and reads as [`CookieError::BadHash`].
//!
//! # Options
//!
//! When the SYN carried timestamps (RFC 7323), the options the ISN has no room for travel in
//! the low 6 bits of our TSval, as Linux does: bits 0-3 the client's window scale (0-14, clamped
//! to 14 per RFC 7323 §2.3; `0xF` = none), bit 4 SACK-permitted, bit 5 reserved (Linux's ECN bit,
//! always 0 here). The client echoes our TSval as TSecr in its ACK. Our TSval is
//! [`SynCookies::ts_clock`] with its low 6 bits replaced, minus 64 if that put it ahead of the
//! clock, so the TSvals of a connection never run backwards once the engine continues with
//! `ts_clock`.
//!
//! Without timestamps there is nowhere to keep them, so window scaling and SACK are **not
//! negotiated** (same as Linux): the SYN-ACK must then carry neither option
//! ([`CookieRequest::offered_window_scale`] and [`CookieRequest::offered_sack`] say what to
//! answer). If the client offered timestamps but the ACK carries none, the connection likewise
//! proceeds without window scale, SACK and timestamps.
//!
//! Nothing here allocates, reads a clock or panics.

use core::fmt;

use siphasher::sip::SipHasher24;
use siphasher::sip128::SipHasher24 as SipHasher24x128;

use crate::tcp::FlowKey;
use crate::time::{Duration, Instant};
use crate::wire::SeqNumber;

/// The MSS values a cookie can encode (Linux's `msstab` for IPv4).
pub const MSS_TABLE: [u16; 4] = [536, 1300, 1440, 1460];

/// Length of one key epoch. A cookie lives for one to two epochs.
pub const COOKIE_EPOCH: Duration = Duration::from_secs(64);

const EPOCH_MICROS: u64 = 64_000_000;
const EPOCH_SHIFT: u32 = 30;
const MSS_SHIFT: u32 = 28;
const HASH_MASK: u32 = (1 << MSS_SHIFT) - 1;

/// Low TSval bits that carry options.
const TS_OPT_MASK: u32 = 0x3F;
const TS_OPT_WSCALE_MASK: u32 = 0x0F;
const TS_OPT_SACK: u32 = 0x10;
const TS_OPT_RESERVED: u32 = 0x20;
/// Largest window scale shift (RFC 7323 §2.3).
const MAX_WINDOW_SCALE: u8 = 14;
/// Oldest TSecr a valid cookie ACK can echo, in ms: two epochs plus the 64 our TSval may lag.
const MAX_TSECR_AGE_MS: u32 = 2 * 64_000 + 64;

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
    /// Whether the SYN-ACK answers with a window scale option: only when the client offered
    /// one *and* timestamps (the cookie can only carry it in our TSval). Returns the client's
    /// shift, clamped to 14.
    pub fn offered_window_scale(&self) -> Option<u8> {
        self.tsval?;
        self.window_scale.map(|ws| ws.min(MAX_WINDOW_SCALE))
    }

    /// Whether the SYN-ACK answers with SACK-permitted: only with timestamps, as above.
    pub fn offered_sack(&self) -> bool {
        self.tsval.is_some() && self.sack_permitted
    }

    /// The MSS the cookie will encode: the largest [`MSS_TABLE`] entry not above the client's.
    pub fn cookie_mss(&self) -> u16 {
        MSS_TABLE[mss_index(self.mss) as usize]
    }
}

/// What to put in the SYN-ACK.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SynCookie {
    /// Our initial sequence number: the cookie.
    pub isn: SeqNumber,
    /// The MSS the connection will send with (from [`MSS_TABLE`]); not our MSS option.
    pub mss: u16,
    /// Our TSval, carrying window scale and SACK-permitted, when the SYN had timestamps.
    pub tsval: Option<u32>,
}

/// What a valid handshake-completing ACK establishes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CookieParams {
    /// Send MSS from the cookie (take the minimum with the engine's own).
    pub mss: u16,
    /// The client's window scale shift (0-14); `None` = no window scaling either way.
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
    /// TSecr ahead of our timestamp clock, older than any valid cookie, or with invalid option
    /// bits.
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
        self.ts_offset_key.hash(&flow_bytes(flow)) as u32
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
        let idx = mss_index(req.mss);
        let hash = self.hash(epoch, flow, client_isn, idx);
        let isn = ((epoch as u32 & 3) << EPOCH_SHIFT) | (u32::from(idx) << MSS_SHIFT) | hash;
        let tsval = req.tsval.map(|_| {
            let ws = req
                .offered_window_scale()
                .map_or(TS_OPT_WSCALE_MASK, u32::from);
            let sack = if req.offered_sack() { TS_OPT_SACK } else { 0 };
            let clock = self.ts_clock(now, flow);
            let ts = (clock & !TS_OPT_MASK) | ws | sack;
            if clock.wrapping_sub(ts) as i32 >= 0 {
                ts
            } else {
                // Never ahead of the clock: later TSvals must not go backwards.
                ts.wrapping_sub(TS_OPT_MASK + 1)
            }
        });
        SynCookie {
            isn: SeqNumber(isn),
            mss: MSS_TABLE[idx as usize],
            tsval,
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
        let idx = ((isn.0 >> MSS_SHIFT) & 3) as u8;
        let expected = self.hash(epoch, flow, client_isn, idx);
        // One comparison of the whole value, no early out per byte.
        if (expected ^ isn.0) & HASH_MASK != 0 {
            return Err(CookieError::BadHash);
        }
        if age > 1 {
            return Err(CookieError::Expired);
        }
        let (window_scale, sack_permitted) = match tsecr {
            None => (None, false),
            Some(ecr) => {
                let lag = self.ts_clock(now, flow).wrapping_sub(ecr);
                // Ahead of the clock (lag "negative") or older than any live cookie.
                if lag > MAX_TSECR_AGE_MS || ecr & TS_OPT_RESERVED != 0 {
                    return Err(CookieError::BadTimestamp);
                }
                let ws = ecr & TS_OPT_WSCALE_MASK;
                // 0xF means none; 0-14 are valid shifts and nothing lies between.
                let ws = (ws != TS_OPT_WSCALE_MASK).then_some(ws as u8);
                (ws, ecr & TS_OPT_SACK != 0)
            }
        };
        Ok(CookieParams {
            mss: MSS_TABLE[idx as usize],
            window_scale,
            sack_permitted,
            timestamps: tsecr.is_some(),
            isn,
            client_isn,
        })
    }

    /// The low 28 bits of SipHash-2-4 under the epoch's key.
    fn hash(&self, epoch: u64, flow: &FlowKey, client_isn: SeqNumber, mss_idx: u8) -> u32 {
        let key = self.epoch_kdf.hash(&epoch.to_le_bytes());
        let mut msg = [0u8; 17];
        msg[..12].copy_from_slice(&flow_bytes(flow));
        msg[12..16].copy_from_slice(&client_isn.0.to_be_bytes());
        msg[16] = mss_idx;
        (SipHasher24::new_with_keys(key.h1, key.h2).hash(&msg) as u32) & HASH_MASK
    }
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

fn flow_bytes(flow: &FlowKey) -> [u8; 12] {
    let mut b = [0u8; 12];
    b[..4].copy_from_slice(&flow.local.ip().octets());
    b[4..6].copy_from_slice(&flow.local.port().to_be_bytes());
    b[6..10].copy_from_slice(&flow.remote.ip().octets());
    b[10..12].copy_from_slice(&flow.remote.port().to_be_bytes());
    b
}

#[cfg(test)]
mod tests {
    use super::*;
    use core::net::{Ipv4Addr, SocketAddrV4};
    use proptest::prelude::*;

    const SECRET: [u8; 32] = *b"0123456789abcdef0123456789ABCDEF";

    fn flow() -> FlowKey {
        FlowKey::new(
            SocketAddrV4::new(Ipv4Addr::new(10, 0, 0, 1), 80),
            SocketAddrV4::new(Ipv4Addr::new(10, 0, 0, 2), 40000),
        )
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
            window_scale: r.offered_window_scale(),
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
            (Some(1299), 536),
            (Some(1300), 1300),
            (Some(1439), 1300),
            (Some(1440), 1440),
            (Some(1459), 1440),
            (Some(1460), 1460),
            (Some(9000), 1460),
            (Some(u16::MAX), 1460),
        ];
        for (mss, want) in cases {
            let r = req(mss, None, false, false);
            assert_eq!(r.cookie_mss(), want, "{mss:?}");
        }
    }

    #[test]
    fn round_trip_every_mss_bucket_and_option_combination() {
        let sc = SynCookies::new(SECRET);
        let f = flow();
        let cisn = SeqNumber(0xFFFF_FFFF); // seg_seq wraps to 0
        for mss in [
            None,
            Some(536),
            Some(1300),
            Some(1440),
            Some(1460),
            Some(9000),
        ] {
            for ws in [None, Some(0), Some(7), Some(14), Some(15), Some(255)] {
                for sack in [false, true] {
                    for ts in [false, true] {
                        let r = req(mss, ws, sack, ts);
                        let c = sc.generate(t0(), &f, cisn, &r);
                        assert_eq!(c.mss, r.cookie_mss());
                        assert_eq!(c.tsval.is_some(), ts);
                        let got = ack_for(&sc, t0() + Duration::from_millis(40), &f, cisn, &c);
                        assert_eq!(got, Ok(expected(&r, &c, cisn)), "{r:?}");
                        let p = got.unwrap();
                        if ts {
                            assert_eq!(p.window_scale, ws.map(|w| w.min(14)));
                            assert_eq!(p.sack_permitted, sack);
                        } else {
                            assert_eq!((p.window_scale, p.sack_permitted), (None, false));
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn isn_layout_encodes_epoch_and_mss_index() {
        let sc = SynCookies::new(SECRET);
        for (e, mss, idx) in [
            (100u64, 1460, 3u32),
            (101, 536, 0),
            (102, 1300, 1),
            (103, 1440, 2),
        ] {
            let now = Instant::from_micros(e * EPOCH_MICROS);
            let c = sc.generate(
                now,
                &flow(),
                SeqNumber(1),
                &req(Some(mss), None, false, false),
            );
            assert_eq!(c.isn.0 >> 30, (e & 3) as u32);
            assert_eq!((c.isn.0 >> 28) & 3, idx);
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

        let other_flows = [
            FlowKey::new(SocketAddrV4::new(Ipv4Addr::new(10, 0, 0, 9), 80), f.remote),
            FlowKey::new(SocketAddrV4::new(*f.local.ip(), 81), f.remote),
            FlowKey::new(
                f.local,
                SocketAddrV4::new(Ipv4Addr::new(10, 0, 0, 3), 40000),
            ),
            FlowKey::new(f.local, SocketAddrV4::new(*f.remote.ip(), 40001)),
            FlowKey::new(f.remote, f.local),
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
        // Every single-bit change of the ACK number, including epoch and MSS bits.
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
    fn timestamp_low_bits_carry_window_scale_and_sack() {
        let sc = SynCookies::new(SECRET);
        let f = flow();
        for (ws, sack, bits) in [
            (None, false, 0x0F),
            (None, true, 0x1F),
            (Some(0), false, 0x00),
            (Some(3), true, 0x13),
            (Some(14), false, 0x0E),
            (Some(200), true, 0x1E),
        ] {
            let c = sc.generate(t0(), &f, SeqNumber(5), &req(None, ws, sack, true));
            assert_eq!(c.tsval.unwrap() & 0x3F, bits, "{ws:?} {sack}");
        }
    }

    #[test]
    fn tsval_never_ahead_of_ts_clock() {
        let sc = SynCookies::new(SECRET);
        let f = flow();
        // Every residue of the clock's low 6 bits, and every option pattern.
        for ms in 0..200u64 {
            let now = Instant::from_millis(1_000_000 + ms);
            let clock = sc.ts_clock(now, &f);
            for ws in [None, Some(0), Some(5), Some(14)] {
                for sack in [false, true] {
                    let c = sc.generate(now, &f, SeqNumber(9), &req(None, ws, sack, true));
                    let ts = c.tsval.unwrap();
                    let lag = clock.wrapping_sub(ts);
                    assert!(lag < 64, "ts {ts} clock {clock}");
                    // The clock with the low bits replaced, less 64 only when that was ahead.
                    let base = (clock & !0x3F) | (ts & 0x3F);
                    if base <= clock {
                        assert_eq!(ts, base);
                    } else {
                        assert_eq!(ts, base - 64);
                    }
                }
            }
        }
    }

    #[test]
    fn ts_clock_counts_milliseconds_with_a_per_flow_offset() {
        let sc = SynCookies::new(SECRET);
        let f = flow();
        let g = FlowKey::new(f.local, SocketAddrV4::new(*f.remote.ip(), 40001));
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
        // Ahead of our clock (the option bits kept valid).
        let ahead = sc.ts_clock(now, &f).wrapping_add(64) & !0x3F | (ts & 0x3F);
        assert_eq!(
            sc.validate(now, &f, seq, ack, Some(ahead)),
            Err(CookieError::BadTimestamp)
        );
        // Far in the past: no live cookie can be that old.
        let old = ts.wrapping_sub(200_000 << 6);
        assert_eq!(
            sc.validate(now, &f, seq, ack, Some(old)),
            Err(CookieError::BadTimestamp)
        );
        // The reserved (ECN) bit set.
        assert_eq!(
            sc.validate(now, &f, seq, ack, Some(ts | 0x20)),
            Err(CookieError::BadTimestamp)
        );
        // Option bits changed but valid: taken as they come (the client could have asked).
        let p = sc
            .validate(now, &f, seq, ack, Some(ts & !0x3F | 0x0F))
            .unwrap();
        assert_eq!((p.window_scale, p.sack_permitted), (None, false));
        // No timestamps in the ACK: no timestamps, window scale or SACK.
        let p = sc.validate(now, &f, seq, ack, None).unwrap();
        assert!(!p.timestamps);
        assert_eq!((p.window_scale, p.sack_permitted), (None, false));
        assert_eq!(p.mss, 1460);
    }

    #[test]
    fn request_helpers() {
        let r = req(Some(1400), Some(20), true, false);
        assert_eq!((r.offered_window_scale(), r.offered_sack()), (None, false));
        let r = req(Some(1400), Some(20), true, true);
        assert_eq!(
            (r.offered_window_scale(), r.offered_sack()),
            (Some(14), true)
        );
        assert_eq!(r.cookie_mss(), 1300);
        assert_eq!(
            format!("{:?}", SynCookies::new(SECRET)),
            "SynCookies { .. }"
        );
    }

    fn arb_flow() -> impl Strategy<Value = FlowKey> {
        (any::<u32>(), any::<u16>(), any::<u32>(), any::<u16>()).prop_map(|(a, p, b, q)| {
            FlowKey::new(
                SocketAddrV4::new(Ipv4Addr::from(a), p),
                SocketAddrV4::new(Ipv4Addr::from(b), q),
            )
        })
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
            if let Some(ts) = c.tsval {
                prop_assert!(clock_then.wrapping_sub(ts) < 64);
            }
            prop_assert_eq!(ack_for(&sc, now, &f, cisn, &c), Ok(expected(&r, &c, cisn)));
            // Two epochs later it is expired.
            let later = Instant::from_micros(end);
            prop_assert_eq!(ack_for(&sc, later, &f, cisn, &c), Err(CookieError::Expired));
        }
    }
}
