//! A scripted TCP client that speaks in whole Ethernet frames, for benchmarks, fuzz targets
//! and tests that drive the engine without a real client stack.
//!
//! It is deliberately simple: it never retransmits, it accepts the server's bytes only in
//! order, and it acknowledges everything it has received. The deterministic simulation uses
//! smoltcp as a real, independent client instead; this one exists to put exact segments on
//! the wire (handshakes for the benchmark, window-edge offsets for the fuzzer).

use core::net::{Ipv4Addr, Ipv6Addr};

use crate::wire::{
    emit_tcp_frame, parse_tcp_frame, tcp_frame_len, EthernetAddress, FrameAddrs, IpPair, SeqNumber,
    TcpFlags, TcpHeader, TcpOptions,
};

/// One client connection's view of the sequence spaces.
#[derive(Debug, Clone)]
pub struct ScriptedClient {
    pub addrs: FrameAddrs,
    pub src_port: u16,
    pub dst_port: u16,
    /// Our next sequence number.
    pub seq: SeqNumber,
    /// The next sequence number we expect from the server.
    pub server_next: SeqNumber,
    /// The server's TSval to echo, once the handshake negotiated timestamps.
    pub server_ts: Option<u32>,
    pub ts: u32,
    pub window: u16,
    /// Whether the server's FIN has been received.
    pub server_fin: bool,
}

/// What a server frame meant to the client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Received {
    pub flags: TcpFlags,
    /// In-order payload bytes accepted from this frame.
    pub accepted: usize,
}

impl ScriptedClient {
    /// A client at 10.0.0.1:`src_port` talking to 10.0.0.2:`dst_port`.
    pub fn new(src_port: u16, dst_port: u16, isn: u32) -> Self {
        ScriptedClient {
            addrs: FrameAddrs {
                eth_src: EthernetAddress([2, 0, 0, 0, 0, 1]),
                eth_dst: EthernetAddress([2, 0, 0, 0, 0, 2]),
                vlan: None,
                ip: IpPair::V4 {
                    src: Ipv4Addr::new(10, 0, 0, 1),
                    dst: Ipv4Addr::new(10, 0, 0, 2),
                },
            },
            src_port,
            dst_port,
            seq: SeqNumber(isn),
            server_next: SeqNumber(0),
            server_ts: None,
            ts: 1,
            window: 65535,
            server_fin: false,
        }
    }

    /// A client at [2001:db8::1]:`src_port` talking to [2001:db8::2]:`dst_port`: the same
    /// client over IPv6.
    pub fn new_ipv6(src_port: u16, dst_port: u16, isn: u32) -> Self {
        let mut client = Self::new(src_port, dst_port, isn);
        client.addrs.ip = IpPair::V6 {
            src: Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1),
            dst: Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 2),
        };
        client
    }

    /// A header from this client with the given flags, our current numbers, and timestamps if
    /// they were negotiated.
    pub fn header(&self, flags: TcpFlags) -> TcpHeader {
        let mut options = TcpOptions::default();
        if let Some(echo) = self.server_ts {
            options.timestamps = Some((self.ts, echo));
        }
        TcpHeader {
            src_port: self.src_port,
            dst_port: self.dst_port,
            seq: self.seq,
            ack: self.server_next,
            flags,
            window: self.window,
            options,
            ..TcpHeader::default()
        }
    }

    /// Writes `tcp` + `payload` as a frame from this client into `buf` (resized to fit).
    pub fn frame(&self, buf: &mut Vec<u8>, tcp: &TcpHeader, payload: &[u8]) -> usize {
        let len = tcp_frame_len(&self.addrs, tcp, payload.len());
        buf.resize(len, 0);
        emit_tcp_frame(buf, &self.addrs, 1, 64, tcp, [payload, &[]])
            .expect("a buffer of tcp_frame_len bytes holds the frame")
    }

    /// The opening SYN, offering MSS 1460, SACK, window scale 7 and (if asked) timestamps.
    pub fn syn(&mut self, buf: &mut Vec<u8>, timestamps: bool) -> usize {
        let mut tcp = self.header(TcpFlags::SYN);
        tcp.ack = SeqNumber(0);
        tcp.options = TcpOptions {
            mss: Some(1460),
            window_scale: Some(7),
            sack_permitted: true,
            timestamps: timestamps.then_some((self.ts, 0)),
            ..TcpOptions::default()
        };
        let n = self.frame(buf, &tcp, &[]);
        self.seq = self.seq + 1u32;
        n
    }

    /// An ACK carrying `payload` (possibly empty); advances our sequence number.
    pub fn send(&mut self, buf: &mut Vec<u8>, payload: &[u8]) -> usize {
        let flags = if payload.is_empty() {
            TcpFlags::ACK
        } else {
            TcpFlags::ACK | TcpFlags::PSH
        };
        let tcp = self.header(flags);
        let n = self.frame(buf, &tcp, payload);
        self.seq = self.seq + payload.len();
        self.ts = self.ts.wrapping_add(1);
        n
    }

    /// Our FIN (with an ACK of everything received).
    pub fn fin(&mut self, buf: &mut Vec<u8>) -> usize {
        let tcp = self.header(TcpFlags::FIN | TcpFlags::ACK);
        let n = self.frame(buf, &tcp, &[]);
        self.seq = self.seq + 1u32;
        n
    }

    /// Takes a frame from the server. In-order payload is appended to `sink` (if given) and
    /// acknowledged by the next frame we build. Returns `None` for frames not for us: other
    /// ports, or other IP addresses (of either family) than ours reversed.
    pub fn receive(&mut self, frame: &[u8], sink: Option<&mut Vec<u8>>) -> Option<Received> {
        let f = parse_tcp_frame(frame).ok()?;
        if f.tcp.dst_port != self.src_port || f.tcp.src_port != self.dst_port {
            return None;
        }
        let ours = (self.addrs.ip_dst(), self.addrs.ip_src());
        if (f.addrs.ip_src(), f.addrs.ip_dst()) != ours {
            return None;
        }
        let t = &f.tcp;
        if t.flags.contains(TcpFlags::SYN) {
            self.server_next = t.seq + 1u32;
            self.server_ts = t.options.timestamps.map(|(v, _)| v);
            return Some(Received {
                flags: t.flags,
                accepted: 0,
            });
        }
        if let (Some((v, _)), Some(_)) = (t.options.timestamps, self.server_ts) {
            self.server_ts = Some(v);
        }
        let mut accepted = 0;
        if t.seq == self.server_next {
            accepted = f.payload.len();
            if let Some(sink) = sink {
                sink.extend_from_slice(f.payload);
            }
            self.server_next = self.server_next + accepted;
            if t.flags.contains(TcpFlags::FIN) {
                self.server_next = self.server_next + 1u32;
                self.server_fin = true;
            }
        }
        Some(Received {
            flags: t.flags,
            accepted,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn syn_offers_options_and_consumes_one_sequence_number() {
        let mut c = ScriptedClient::new(5000, 80, 99);
        let mut buf = Vec::new();
        let n = c.syn(&mut buf, true);
        let f = parse_tcp_frame(&buf[..n]).unwrap();
        assert_eq!(f.tcp.flags, TcpFlags::SYN);
        assert_eq!(f.tcp.seq, SeqNumber(99));
        assert_eq!(f.tcp.options.mss, Some(1460));
        assert!(f.tcp.options.timestamps.is_some());
        assert_eq!(c.seq, SeqNumber(100));
    }

    #[test]
    fn receive_accepts_only_in_order_bytes_and_counts_fin() {
        let mut c = ScriptedClient::new(5000, 80, 1);
        c.server_next = SeqNumber(500);
        let server = ScriptedClient {
            addrs: c.addrs.reversed(),
            src_port: 80,
            dst_port: 5000,
            seq: SeqNumber(500),
            ..c.clone()
        };
        let mut buf = Vec::new();
        let mut tcp = server.header(TcpFlags::ACK | TcpFlags::FIN);
        let n = server.frame(&mut buf, &tcp, b"hello");
        let mut sink = Vec::new();
        let r = c.receive(&buf[..n], Some(&mut sink)).unwrap();
        assert_eq!(r.accepted, 5);
        assert_eq!(sink, b"hello");
        assert!(c.server_fin);
        assert_eq!(c.server_next, SeqNumber(506));
        // A segment from the past is not accepted again.
        tcp.flags = TcpFlags::ACK;
        let n = server.frame(&mut buf, &tcp, b"hello");
        assert_eq!(c.receive(&buf[..n], Some(&mut sink)).unwrap().accepted, 0);
        // Frames for another port are not ours.
        tcp.dst_port = 5001;
        let n = server.frame(&mut buf, &tcp, b"x");
        assert!(c.receive(&buf[..n], None).is_none());
        // Nor are frames from the right port of another address, or in the other family.
        tcp.dst_port = 5000;
        for ip in [
            IpPair::V4 {
                src: Ipv4Addr::new(10, 0, 0, 9),
                dst: Ipv4Addr::new(10, 0, 0, 1),
            },
            ScriptedClient::new_ipv6(5000, 80, 1).addrs.ip.reversed(),
        ] {
            let other = ScriptedClient {
                addrs: FrameAddrs { ip, ..server.addrs },
                ..server.clone()
            };
            let n = other.frame(&mut buf, &tcp, b"x");
            assert!(c.receive(&buf[..n], None).is_none(), "{ip:?}");
        }
    }
}
