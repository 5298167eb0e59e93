//! What the root-only tests that run xgate share: the root check and the xgate binary.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;

pub use xgate_testnet::is_root;

/// The xgate binary of the same profile as `loadgen` (beside it in the target directory),
/// built if needed.
pub fn xgate_beside(loadgen: &Path) -> PathBuf {
    let xgate = loadgen.with_file_name("xgate");
    if !xgate.is_file() {
        let release = loadgen.parent().is_some_and(|d| d.ends_with("release"));
        let mut c = Command::new(env!("CARGO"));
        c.args(["build", "-p", "dataplane", "--bin", "xgate"]);
        if release {
            c.arg("--release");
        }
        assert!(c.status().expect("cargo build").success(), "building xgate");
    }
    assert!(xgate.is_file(), "{xgate:?}");
    xgate
}
