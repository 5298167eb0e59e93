#![no_main]
//! Arbitrary bytes as an Ethernet frame, with and without repaired checksums: parsing never
//! panics, and whatever parses re-emits to a frame that parses to the same meaning. The same
//! bytes as an ICMP path MTU message: never a panic, never both a TCP segment and ICMP, and
//! what parses is consistent (the quoted flow in the message's family).
use libfuzzer_sys::fuzz_target;
use xgate_core::wire::{
    emit_tcp_frame, parse_icmp_frame, parse_tcp_frame, tcp_frame_len, IcmpMessage, IpFamily,
    WireError,
};

fn check_icmp(frame: &[u8]) {
    let icmp = parse_icmp_frame(frame);
    if let Ok(IcmpMessage::PacketTooBig(m)) = icmp {
        assert_eq!(m.family == IpFamily::Ipv6, m.flow.is_ipv6());
    }
    if parse_tcp_frame(frame).is_ok() {
        assert_eq!(icmp, Err(WireError::NotIcmp), "a TCP segment read as ICMP");
    }
}

fuzz_target!(|data: &[u8]| {
    let _ = parse_tcp_frame(data);
    check_icmp(data);
    let mut frame = data.to_vec();
    xgate_fuzz::repair_checksums(&mut frame);
    check_icmp(&frame);
    let Ok(parsed) = parse_tcp_frame(&frame) else {
        return;
    };
    let len = tcp_frame_len(&parsed.addrs, &parsed.tcp, parsed.payload.len());
    let mut out = vec![0u8; len];
    let (a, b) = parsed.payload.split_at(parsed.payload.len() / 2);
    let written = emit_tcp_frame(&mut out, &parsed.addrs, 7, parsed.ttl, &parsed.tcp, [a, b])
        .expect("a buffer of tcp_frame_len bytes fits the frame");
    assert_eq!(written, len);
    let again = parse_tcp_frame(&out).expect("an emitted frame parses");
    assert_eq!(again.addrs, parsed.addrs);
    assert_eq!(again.payload, parsed.payload);
    let (x, y) = (&again.tcp, &parsed.tcp);
    assert_eq!(
        (x.src_port, x.dst_port, x.seq, x.ack, x.flags, x.window, x.urgent),
        (y.src_port, y.dst_port, y.seq, y.ack, y.flags, y.window, y.urgent)
    );
    assert_eq!(
        (
            x.options.mss,
            x.options.window_scale,
            x.options.sack_permitted,
            x.options.timestamps
        ),
        (
            y.options.mss,
            y.options.window_scale,
            y.options.sack_permitted,
            y.options.timestamps
        )
    );
    // SACK blocks that do not fit beside the other options are left out, never invented.
    assert!(x.options.sack().len() <= y.options.sack().len());
    assert_eq!(
        x.options.sack(),
        &y.options.sack()[..x.options.sack().len()]
    );
});
