//! The `loadgen` binary: the JSON a comparison runner reads (its documented fields), the
//! summary, and refusals that say what is wrong.

mod common;

use std::process::Command;

use common::{gateway_like, start};
use serde_json::Value;

fn loadgen(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_loadgen"))
        .args(args)
        .output()
        .expect("loadgen runs")
}

#[test]
fn json_on_stdout_has_the_documented_schema() {
    let server = start(gateway_like);
    let url = format!("http://{}/bytes/300", server.addr);
    let out = loadgen(&[
        "run",
        "--url",
        &url,
        "-c",
        "3",
        "-p",
        "2",
        "-n",
        "200",
        "--verify-body",
        "--json",
        "-",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(
        stderr.contains("200 ok, 0 failed"),
        "summary on stderr: {stderr}"
    );
    let v: Value = serde_json::from_slice(&out.stdout).expect("stdout is only JSON");

    assert_eq!(v["schema"], "xgate-loadgen-run/1");
    assert_eq!(v["requests"], 200);
    assert_eq!(v["ok"], 200);
    assert_eq!(v["failed"], 0);
    let sc = &v["scenario"];
    assert_eq!(sc["url"], url);
    assert_eq!(sc["loop"], "closed");
    assert_eq!(sc["connections"], 3);
    assert_eq!(sc["pipeline"], 2);
    assert_eq!(sc["requests"], 200);
    assert_eq!(sc["verify_body"], "pattern");
    assert_eq!(sc["expect_body_size"], 300);
    for kind in [
        "connect",
        "reset",
        "timeout",
        "status",
        "short_body",
        "body_length",
        "body_bytes",
        "protocol",
        "closed",
        "io",
    ] {
        assert_eq!(v["errors"][kind], 0, "errors.{kind}");
    }
    for field in [
        "p50", "p90", "p99", "p99_9", "p99_99", "max", "mean", "min", "stdev",
    ] {
        assert!(v["latency_us"][field].is_f64(), "latency_us.{field}");
    }
    assert_eq!(v["latency_us"]["count"], 200);
    let points = v["latency_distribution"].as_array().unwrap();
    assert!(points.len() > 5);
    assert!(points
        .iter()
        .all(|p| p["percentile"].is_f64() && p["latency_us"].is_f64()));
    assert_eq!(points.last().unwrap()["percentile"], 100.0);
    assert!(v["latency_uncorrected_us"].is_null(), "closed loop");
    assert!(v["throughput_rps"].as_f64().unwrap() > 0.0);
    assert!(v["elapsed_s"].as_f64().unwrap() > 0.0);
    assert!(v["bytes_received"].as_u64().unwrap() > 200 * 300);
    assert!(v["cpu"]["per_request_us"].is_f64());
    assert!(v["connections"]["established"].is_u64());
}

#[test]
fn json_to_a_file_and_the_summary_on_stdout() {
    let server = start(gateway_like);
    let dir = std::env::temp_dir().join(format!("loadgen-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("report.json");
    let out = loadgen(&[
        "run",
        "--addr",
        &server.addr.to_string(),
        "--path",
        "/health",
        "--rate",
        "500",
        "--duration",
        "200ms",
        "--json",
        file.to_str().unwrap(),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert!(stdout.contains("open loop at 500 req/s"), "{stdout}");
    let v: Value = serde_json::from_slice(&std::fs::read(&file).unwrap()).unwrap();
    assert_eq!(v["scenario"]["loop"], "open");
    assert_eq!(v["requests"], 100);
    assert!(v["latency_uncorrected_us"]["p50"].is_f64());
    assert!(v["send_lag_us"]["max"].is_f64());
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn nonsense_is_refused_with_what_is_wrong() {
    for (args, words) in [
        (&["--rate", "0"][..], "--rate"),
        (&["--churn", "--pipeline", "4"], "--churn"),
        (
            &["--threads", "4", "-c", "2"],
            "--threads 4 is more than --connections 2",
        ),
        (&["--method", "GET X"], "--method"),
    ] {
        let mut all = vec!["run", "--url", "http://127.0.0.1:9/"];
        all.extend_from_slice(args);
        let out = loadgen(&all);
        assert!(!out.status.success(), "{args:?} accepted");
        let stderr = String::from_utf8(out.stderr).unwrap();
        assert!(stderr.contains(words), "{args:?}: {stderr}");
    }
    let out = loadgen(&["run", "--url", "http://127.0.0.1:1/"]);
    assert!(!out.status.success());
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(stderr.contains("cannot connect to 127.0.0.1:1"), "{stderr}");
}
