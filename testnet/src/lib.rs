//! The test network every root-only test and benchmark of xgate stands on, written once:
//!
//! - [`topology`]: two network namespaces joined by a veth pair, named uniquely per process
//!   and per topology, with addresses and offload settings, removed on drop (also when a test
//!   panics), and nothing removed that it did not create;
//! - [`netns`]: running a closure or a thread inside a namespace, and moving the calling
//!   thread in and back out;
//! - [`packet`]: a raw `AF_PACKET` socket on an interface of a namespace, for crafted frames;
//! - [`nfqueue`]: the nfnetlink_queue socket (bind a queue, read queued packets, accept or
//!   drop them);
//! - [`path`]: an emulated network path (delay, bottleneck rate and queue, loss) for a
//!   namespace's TCP packets, on two NFQUEUE queues, since this kernel has no netem;
//! - [`tap`]: a TAP interface in a namespace whose descriptor this process holds, so a client
//!   in user space is the other end of the link.
//!
//! Nothing here knows about xgate: what a gateway leaves behind (pins, lock files, cgroups),
//! how it is started and which binaries run stay with the tests and the comparison runner
//! that use this crate. Everything that needs a syscall goes through [`sys`], whose `unsafe`
//! blocks each say why they are sound.

pub mod netns;
pub mod nfqueue;
pub mod packet;
pub mod path;
mod sys;
pub mod tap;
pub mod topology;

use std::process::{Command, Output};

pub use topology::{NapiCpus, OffloadSettings, Topology, TopologyConfig, CLIENT_IP6, SERVER_IP6};

/// A command that could not be spawned or that exited unsuccessfully.
#[derive(Debug, thiserror::Error)]
#[error("`{command}` failed: {message}")]
pub struct CommandError {
    /// The command line, words joined by spaces.
    pub command: String,
    /// The spawn error, or the command's trimmed stderr.
    pub message: String,
}

/// Runs `args[0]` with the rest as its arguments to completion; a failure carries its stderr.
pub fn run(args: &[&str]) -> Result<Output, CommandError> {
    let (program, rest) = args.split_first().ok_or_else(|| CommandError {
        command: String::new(),
        message: "empty command line".into(),
    })?;
    let out = Command::new(program)
        .args(rest)
        .output()
        .map_err(|e| CommandError {
            command: args.join(" "),
            message: e.to_string(),
        })?;
    if !out.status.success() {
        return Err(CommandError {
            command: args.join(" "),
            message: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        });
    }
    Ok(out)
}

/// Whether this process runs as root (the tests that build networks skip otherwise).
pub fn is_root() -> bool {
    sys::geteuid() == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn run_returns_stdout_of_a_successful_command() {
        let out = run(&["sh", "-c", "echo hello"]).unwrap();
        assert_eq!(String::from_utf8_lossy(&out.stdout), "hello\n");
    }

    #[test]
    fn run_reports_the_command_and_its_stderr() {
        let e = run(&["sh", "-c", "echo broken >&2; exit 3"]).unwrap_err();
        assert_eq!(e.command, "sh -c echo broken >&2; exit 3");
        assert_eq!(e.message, "broken");
        assert_eq!(
            e.to_string(),
            "`sh -c echo broken >&2; exit 3` failed: broken"
        );
    }

    #[test]
    fn run_reports_a_program_that_does_not_exist() {
        let e = run(&["/nonexistent/xgate-testnet-program"]).unwrap_err();
        assert!(e.message.contains("No such file"), "{}", e.message);
        assert!(run(&[]).is_err());
    }
}
