//! loadgen: xgate's HTTP/1.1 load generator on kernel sockets.
//!
//! `response` reads and checks the responses of one connection (sans-IO).

pub mod response;
