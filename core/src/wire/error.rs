//! Why a frame was refused (or could not be written).

/// One variant per reason a frame is refused, so each can feed its own drop counter
/// (see [`WireError::as_str`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, thiserror::Error)]
pub enum WireError {
    /// The buffer ends before a header it announces (Ethernet, 802.1Q tag, IPv4 or TCP).
    #[error("frame truncated")]
    Truncated,
    /// The (inner) ethertype is not IPv4.
    #[error("ethertype is not IPv4")]
    NotIpv4,
    /// QinQ (0x88a8 / 0x9100) or a second 802.1Q tag.
    #[error("unsupported VLAN tagging (QinQ or stacked tags)")]
    UnsupportedVlan,
    /// The IP version field is not 4.
    #[error("IP version is not 4")]
    BadIpVersion,
    /// IHL below 5 (a header shorter than 20 bytes).
    #[error("IPv4 header length below 20 bytes")]
    BadIpHeaderLength,
    /// Total length below the header length or beyond the end of the frame.
    #[error("IPv4 total length inconsistent with header or frame")]
    BadIpTotalLength,
    /// The IPv4 header checksum does not verify.
    #[error("IPv4 header checksum mismatch")]
    IpChecksum,
    /// MF set or a non-zero fragment offset: fragments are not ours.
    #[error("IPv4 fragment")]
    Fragment,
    /// The IPv4 protocol is not TCP (6).
    #[error("IPv4 protocol is not TCP")]
    NotTcp,
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
    /// Emit: header + payload exceed the 65535-byte IPv4 total length.
    #[error("payload too large for one IPv4 packet")]
    PayloadTooLarge,
}

impl WireError {
    /// Every variant, in declaration order (to pre-register one counter per reason).
    pub const ALL: [WireError; 14] = [
        WireError::Truncated,
        WireError::NotIpv4,
        WireError::UnsupportedVlan,
        WireError::BadIpVersion,
        WireError::BadIpHeaderLength,
        WireError::BadIpTotalLength,
        WireError::IpChecksum,
        WireError::Fragment,
        WireError::NotTcp,
        WireError::BadTcpDataOffset,
        WireError::BadTcpOption,
        WireError::TcpChecksum,
        WireError::BufferTooSmall,
        WireError::PayloadTooLarge,
    ];

    /// A short, stable, snake_case label, usable as a metrics label value.
    pub const fn as_str(&self) -> &'static str {
        match self {
            WireError::Truncated => "truncated",
            WireError::NotIpv4 => "not_ipv4",
            WireError::UnsupportedVlan => "unsupported_vlan",
            WireError::BadIpVersion => "bad_ip_version",
            WireError::BadIpHeaderLength => "bad_ip_header_length",
            WireError::BadIpTotalLength => "bad_ip_total_length",
            WireError::IpChecksum => "ip_checksum",
            WireError::Fragment => "fragment",
            WireError::NotTcp => "not_tcp",
            WireError::BadTcpDataOffset => "bad_tcp_data_offset",
            WireError::BadTcpOption => "bad_tcp_option",
            WireError::TcpChecksum => "tcp_checksum",
            WireError::BufferTooSmall => "buffer_too_small",
            WireError::PayloadTooLarge => "payload_too_large",
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
