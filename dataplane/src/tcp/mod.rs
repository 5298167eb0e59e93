//! Sans-IO TCP server engine: SYN cookies, connection table, state machine, timers, buffers.

mod flow;

pub use flow::FlowKey;
