//! Sans-IO TCP server engine: SYN cookies, connection table, state machine, timers, buffers.

mod flow;
mod ring;

pub use flow::FlowKey;
pub use ring::RingBuffer;
