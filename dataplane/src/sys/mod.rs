//! Thin, safe wrappers over the system calls the running process makes outside the rings and
//! the BPF loader, so that their `unsafe` sits in one place with its reasons.

pub mod socket;
