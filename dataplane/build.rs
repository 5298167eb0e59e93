//! Builds `bpf/xgate.bpf.c` with clang and generates its libbpf-rs skeleton into `OUT_DIR`;
//! `src/bpf/skel.rs` includes it.

use std::env;
use std::path::PathBuf;

use libbpf_cargo::SkeletonBuilder;

fn main() {
    let manifest_dir =
        PathBuf::from(env::var_os("CARGO_MANIFEST_DIR").expect("CARGO_MANIFEST_DIR"));
    let bpf_dir = manifest_dir.join("../bpf");
    let src = bpf_dir.join("xgate.bpf.c");
    let header = bpf_dir.join("xgate.h");
    let out = PathBuf::from(env::var_os("OUT_DIR").expect("OUT_DIR")).join("xgate.skel.rs");

    // Debian keeps <asm/types.h> under the multiarch directory, which `clang -target bpf`
    // does not search on its own. libbpf's own headers (bpf_helpers.h) come from libbpf-sys.
    let arch = env::var("CARGO_CFG_TARGET_ARCH").unwrap_or_else(|_| "x86_64".into());
    let multiarch = format!("-I/usr/include/{arch}-linux-gnu");
    let clang = env::var_os("CLANG").unwrap_or_else(|| "clang".into());

    SkeletonBuilder::new()
        .source(&src)
        .clang(clang)
        .clang_args([
            multiarch.as_str(),
            "-I",
            bpf_dir.to_str().expect("utf-8 path"),
            "-Wall",
            "-Wextra",
            "-Wno-unused-parameter",
            "-Werror",
        ])
        .build_and_generate(&out)
        .unwrap_or_else(|e| {
            panic!(
                "building {}: {e:#}\n(the BPF build needs clang, linux-libc-dev and libelf-dev: \
                 run scripts/setup.sh as root)",
                src.display()
            )
        });

    println!("cargo:rerun-if-changed={}", src.display());
    println!("cargo:rerun-if-changed={}", header.display());
    println!("cargo:rerun-if-env-changed=CLANG");
}
