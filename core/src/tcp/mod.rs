//! Sans-IO TCP server engine: SYN cookies, connection table, state machine, timers, buffers.

mod assembler;
mod buffer_budget;
mod challenge;
mod config;
mod congestion;
mod conn;
mod ecn;
mod endpoint;
mod flow;
mod prr;
mod push_marks;
mod quick_ack;
mod rack;
mod rcv_rtt;
mod ring;
mod rtt;
mod sack;
mod send_log;
#[cfg(test)]
mod sim_tests;
mod syncookie;
#[cfg(test)]
mod tests;
mod timer;
mod tlp;

pub use assembler::{Assembler, AssemblerFull, MAX_RANGES, MIN_RANGES};
pub use config::{DropReason, TcpConfig, TcpStats};
pub use congestion::CongestionAlgorithm;
pub use endpoint::{ConnHandle, Endpoint, Event, SendBacklog, Stream, FOREIGN_PMTU_MAX};
pub use flow::FlowKey;
pub use ring::RingBuffer;
pub use syncookie::{
    CookieError, CookieParams, CookieRequest, SynCookie, SynCookies, COOKIE_EPOCH, MAC_BITS,
    MSS_TABLE, WSCALE_TABLE,
};
