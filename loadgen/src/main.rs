//! `loadgen`: the command line (to come); the work is in the library.

fn main() {}
