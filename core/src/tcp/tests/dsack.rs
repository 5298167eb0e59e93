//! D-SACK (RFC 2883): the receiver names a duplicate segment in the first SACK block of its
//! next ACK; the sender tells such a block from news of data held.

use super::*;

/// The client sends `payload` at `seq` (whatever its own sequence number is now).
fn send_at(fx: &mut Fx, seq: SeqNumber, payload: &[u8]) -> Vec<Out> {
    let mut h = fx.hdr(TcpFlags::ACK);
    h.seq = seq;
    let _ = fx.send_hdr(&h, payload);
    fx.out()
}

fn blocks(o: &Out) -> Vec<(SeqNumber, SeqNumber)> {
    o.hdr
        .options
        .sack()
        .iter()
        .map(|b| (b.left, b.right))
        .collect()
}

#[test]
fn rfc2883_s4_duplicate_below_rcv_nxt_is_reported_first() {
    let mut fx = Fx::new();
    let s0 = fx.seq;
    fx.send(TcpFlags::ACK, &[1; 100]).unwrap();
    fx.send(TcpFlags::ACK, &[2; 100]).unwrap();
    let _ = fx.out();
    // The first segment again: wholly below RCV.NXT.
    let out = send_at(&mut fx, s0, &[1; 100]);
    assert_eq!(out.len(), 1, "ACKed at once");
    assert_eq!(out[0].hdr.ack, s0 + 200u32);
    assert_eq!(blocks(&out[0]), [(s0, s0 + 100u32)]);
    assert_eq!(fx.ep.stats().dsacks_sent, 1);
    // Part old, part new: the old part is named.
    let out = send_at(&mut fx, s0 + 150u32, &[3; 100]);
    assert_eq!(out[0].hdr.ack, s0 + 250u32);
    assert_eq!(blocks(&out[0]), [(s0 + 150u32, s0 + 200u32)]);
    // Reported once: the next ACK has no block.
    fx.seq = s0 + 250u32;
    fx.send(TcpFlags::ACK, &[4; 10]).unwrap();
    fx.now += Duration::from_secs(1);
    fx.ep.handle_timeout(fx.now);
    let out = fx.out();
    assert_eq!(out.len(), 1);
    assert_eq!(blocks(&out[0]), []);
    assert_eq!(fx.ep.stats().dsacks_sent, 2);
}

#[test]
fn rfc2883_s4_2_a_duplicate_of_held_out_of_order_data_comes_first_then_its_block() {
    let mut fx = Fx::new();
    let s0 = fx.seq;
    // [100, 300) held above a hole at [0, 100), and [400, 500).
    assert!(!send_at(&mut fx, s0 + 400u32, &[9; 100]).is_empty());
    assert!(!send_at(&mut fx, s0 + 100u32, &[1; 100]).is_empty());
    assert!(!send_at(&mut fx, s0 + 200u32, &[2; 100]).is_empty());
    // [150, 250) again: the D-SACK block, then the block that holds it (RFC 2883 §4 (2)),
    // then the rest.
    let out = send_at(&mut fx, s0 + 150u32, &[1; 100]);
    assert_eq!(out[0].hdr.ack, s0);
    assert_eq!(
        blocks(&out[0]),
        [
            (s0 + 150u32, s0 + 250u32),
            (s0 + 100u32, s0 + 300u32),
            (s0 + 400u32, s0 + 500u32)
        ]
    );
    // Partly new ([300, 350) was missing): the held part [250, 300) is the duplicate.
    let out = send_at(&mut fx, s0 + 250u32, &[2; 100]);
    assert_eq!(blocks(&out[0])[0], (s0 + 250u32, s0 + 300u32));
    assert_eq!(fx.ep.stats().dsacks_sent, 2);
}

#[test]
fn rfc2883_no_dsack_without_sack_permitted() {
    let mut fx = Fx::with(
        small_config(),
        HsOpts {
            ts: true,
            ws: true,
            sack: false,
        },
    );
    let s0 = fx.seq;
    fx.send(TcpFlags::ACK, &[1; 100]).unwrap();
    let _ = fx.out();
    let out = send_at(&mut fx, s0, &[1; 100]);
    assert_eq!(out.len(), 1);
    assert_eq!(blocks(&out[0]), []);
    assert_eq!(fx.ep.stats().dsacks_sent, 0);
}

#[test]
fn rfc2883_s4_the_sender_takes_a_first_block_below_the_ack_or_inside_the_second_as_dsack() {
    let mut fx = Fx::new();
    fx.app_send(&vec![5u8; 6 * 1448]);
    let s: Vec<SeqNumber> = fx.out().iter().map(|o| o.hdr.seq).collect();
    fx.ack = s[2];
    // Below the cumulative ACK.
    fx.send_sack(&[(s[0], s[1])]);
    assert_eq!(fx.ep.stats().dsacks_received, 1);
    // Inside the second block.
    let max = s[5] + 1448u32;
    fx.send_sack(&[(s[4], s[5]), (s[3], max)]);
    assert_eq!(fx.ep.stats().dsacks_received, 2);
    // Not D-SACKs: an ordinary first block, an empty or inverted one, one beyond SND.MAX.
    fx.send_sack(&[(s[3], s[4])]);
    fx.send_sack(&[(s[1], s[1])]);
    fx.send_sack(&[(s[1], s[0])]);
    fx.send_sack(&[(max + 10u32, max + 20u32), (max, max + 100u32)]);
    fx.send_sack(&[(s[5], max + 100u32), (s[4], max + 200u32)]);
    fx.send_sack(&[(SeqNumber(s[0].0.wrapping_sub(1 << 31)), s[1])]);
    assert_eq!(fx.ep.stats().dsacks_received, 2);
    let _ = fx.out();
}
