//! Zero-copy views and builders for the headers on the bypass path: Ethernet II (+802.1Q),
//! IPv4 and TCP with options, and the Internet checksum.

mod seq;

pub use seq::SeqNumber;
