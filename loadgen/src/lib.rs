//! loadgen: xgate's HTTP/1.1 load generator on kernel sockets, made to compare the gateway's
//! bypass path, its kernel path and nginx.
//!
//! Modules: `response` (sans-IO response reader and verifier), `request` (the request bytes),
//! `scenario` (what to run and its validation), `schedule` (the open loop's timetable).

pub mod request;
pub mod response;
pub mod scenario;
pub mod schedule;

pub use response::{BodyCheck, Expect};
pub use scenario::{Scenario, ScenarioError, Stop, Target};
