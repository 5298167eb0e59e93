//! Why a frame was refused (or could not be written).

/// One variant per reason a frame is refused, so each can feed its own drop counter
/// (see [`WireError::as_str`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, thiserror::Error)]
pub enum WireError {
    /// The buffer ends before a header it announces (Ethernet, 802.1Q tag, IPv4, IPv6, TCP,
    /// ICMP, or the IP header and 8 bytes of TCP an ICMP error quotes).
    #[error("frame truncated")]
    Truncated,
    /// The (inner) ethertype is neither IPv4 nor IPv6.
    #[error("ethertype is neither IPv4 nor IPv6")]
    NotIp,
    /// QinQ (0x88a8 / 0x9100) or a second 802.1Q tag.
    #[error("unsupported VLAN tagging (QinQ or stacked tags)")]
    UnsupportedVlan,
    /// The IP version field is not the one the ethertype announced (4 or 6).
    #[error("IP version does not match the ethertype")]
    BadIpVersion,
    /// IHL below 5 (a header shorter than 20 bytes).
    #[error("IPv4 header length below 20 bytes")]
    BadIpHeaderLength,
    /// IPv4: total length below the header length or beyond the end of the frame; IPv6: the
    /// payload length runs past the end of the frame.
    #[error("IP length inconsistent with header or frame")]
    BadIpTotalLength,
    /// The IPv4 header checksum does not verify.
    #[error("IPv4 header checksum mismatch")]
    IpChecksum,
    /// IPv4 with MF set or a non-zero fragment offset, or IPv6 with a Fragment header (atomic
    /// fragments included): fragments are the kernel's to reassemble, never ours.
    #[error("IP fragment")]
    Fragment,
    /// The IPv4 protocol, or the IPv6 header after the extension headers, is not TCP (6). An
    /// IPv6 Next Header value xgate does not know lands here too (RFC 8200 §4: discard).
    #[error("IP protocol is not TCP")]
    NotTcp,
    /// An IPv6 extension header runs past the payload, its options do not fill it exactly, or
    /// a Hop-by-Hop header is not the first (RFC 8200 §4.1).
    #[error("malformed IPv6 extension header")]
    BadIpv6ExtensionHeader,
    /// A Hop-by-Hop or Destination option whose type says an unrecognising node discards the
    /// packet (RFC 8200 §4.2: high bits other than 00); xgate recognises none.
    #[error("IPv6 option that asks to discard the packet")]
    Ipv6UnrecognizedOption,
    /// An IPv6 Routing header with Segments Left above 0: this host is not the packet's final
    /// destination (RFC 8200 §4.4).
    #[error("IPv6 routing header with segments left")]
    Ipv6Routing,
    /// An IPv6 ESP or AH header: the kernel's IPsec owns the packet.
    #[error("IPv6 IPsec header (ESP or AH)")]
    Ipv6Ipsec,
    /// An IPv6 extension header xgate does not walk past (Mobility, HIP, Shim6, experimental).
    #[error("unsupported IPv6 extension header")]
    UnsupportedIpv6Header,
    /// IPv6 No Next Header (59): nothing follows.
    #[error("IPv6 no next header")]
    NoNextHeader,
    /// More IPv6 extension headers than `ipv6::MAX_EXTENSION_HEADERS`.
    #[error("too many IPv6 extension headers")]
    TooManyIpv6Headers,
    /// TCP data offset below 5 or past the end of the segment.
    #[error("bad TCP data offset")]
    BadTcpDataOffset,
    /// A TCP option with a length below 2, running past the header, or with the wrong length
    /// for its kind.
    #[error("malformed TCP option")]
    BadTcpOption,
    /// The TCP checksum (pseudo-header + header + payload) does not verify.
    #[error("TCP checksum mismatch")]
    TcpChecksum,
    /// Emit: the output buffer is shorter than the frame.
    #[error("output buffer too small")]
    BufferTooSmall,
    /// Emit: header + payload exceed the 65535-byte IPv4 total length, or the TCP segment the
    /// 65535-byte IPv6 payload length (no jumbograms).
    #[error("payload too large for one IP packet")]
    PayloadTooLarge,
    /// `parse_icmp_frame`: the IPv4 protocol, or the IPv6 header after the extension headers,
    /// is not ICMP (1) or ICMPv6 (58).
    #[error("IP protocol is not ICMP")]
    NotIcmp,
    /// The ICMP checksum (ICMPv6: over the pseudo-header too) does not verify.
    #[error("ICMP checksum mismatch")]
    IcmpChecksum,
}

impl WireError {
    /// Every variant, in declaration order (to pre-register one counter per reason).
    pub const ALL: [WireError; 23] = [
        WireError::Truncated,
        WireError::NotIp,
        WireError::UnsupportedVlan,
        WireError::BadIpVersion,
        WireError::BadIpHeaderLength,
        WireError::BadIpTotalLength,
        WireError::IpChecksum,
        WireError::Fragment,
        WireError::NotTcp,
        WireError::BadIpv6ExtensionHeader,
        WireError::Ipv6UnrecognizedOption,
        WireError::Ipv6Routing,
        WireError::Ipv6Ipsec,
        WireError::UnsupportedIpv6Header,
        WireError::NoNextHeader,
        WireError::TooManyIpv6Headers,
        WireError::BadTcpDataOffset,
        WireError::BadTcpOption,
        WireError::TcpChecksum,
        WireError::BufferTooSmall,
        WireError::PayloadTooLarge,
        WireError::NotIcmp,
        WireError::IcmpChecksum,
    ];

    /// A short, stable, snake_case label, usable as a metrics label value.
    pub const fn as_str(&self) -> &'static str {
        match self {
            WireError::Truncated => "truncated",
            WireError::NotIp => "not_ip",
            WireError::UnsupportedVlan => "unsupported_vlan",
            WireError::BadIpVersion => "bad_ip_version",
            WireError::BadIpHeaderLength => "bad_ip_header_length",
            WireError::BadIpTotalLength => "bad_ip_total_length",
            WireError::IpChecksum => "ip_checksum",
            WireError::Fragment => "fragment",
            WireError::NotTcp => "not_tcp",
            WireError::BadIpv6ExtensionHeader => "bad_ipv6_extension_header",
            WireError::Ipv6UnrecognizedOption => "ipv6_unrecognized_option",
            WireError::Ipv6Routing => "ipv6_routing",
            WireError::Ipv6Ipsec => "ipv6_ipsec",
            WireError::UnsupportedIpv6Header => "unsupported_ipv6_header",
            WireError::NoNextHeader => "no_next_header",
            WireError::TooManyIpv6Headers => "too_many_ipv6_headers",
            WireError::BadTcpDataOffset => "bad_tcp_data_offset",
            WireError::BadTcpOption => "bad_tcp_option",
            WireError::TcpChecksum => "tcp_checksum",
            WireError::BufferTooSmall => "buffer_too_small",
            WireError::PayloadTooLarge => "payload_too_large",
            WireError::NotIcmp => "not_icmp",
            WireError::IcmpChecksum => "icmp_checksum",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_are_unique_snake_case_and_cover_every_variant() {
        let mut seen = std::collections::HashSet::new();
        for e in WireError::ALL {
            let l = e.as_str();
            assert!(
                l.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_'),
                "{l}"
            );
            assert!(seen.insert(l), "duplicate label {l}");
            assert!(!e.to_string().is_empty());
        }
        assert_eq!(seen.len(), WireError::ALL.len());
    }
}
