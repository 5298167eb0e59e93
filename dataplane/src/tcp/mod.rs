//! Sans-IO TCP server engine: SYN cookies, connection table, state machine, timers, buffers.

mod assembler;
mod flow;
mod ring;
mod syncookie;

pub use assembler::{Assembler, AssemblerFull, MAX_RANGES};
pub use flow::FlowKey;
pub use ring::RingBuffer;
pub use syncookie::{
    CookieError, CookieParams, CookieRequest, SynCookie, SynCookies, COOKIE_EPOCH, MSS_TABLE,
};
