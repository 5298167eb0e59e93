//! Root-only end-to-end proof of TLS termination on both paths, with real clients: curl over
//! TLS 1.2 and 1.3 (ECDSA and RSA certificates, byte-exact bodies up to 100 MB each way),
//! `openssl s_client` (SNI, ALPN, session resumption), Python's ssl module, plain HTTP on a
//! TLS port, unknown server names, the counters on the metrics page; `xgate bypass off/on`
//! under HTTPS client loops with no failed request; a reload that swaps the certificate while
//! a connection stays open, and one that is refused for a key that is not the certificate's.
//!
//! Certificates are made at test time by the `openssl` command line, as an operator would.
//! Every wait is bounded; everything created is removed, also on panic. Skips when not root.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::status::{
    client_loop_totals, metric, num, pollers_sum, port, scrape_metrics, settle, status,
    switch_rounds,
};
use common::{bytes_body, is_root, noise, start_xgate, terminate, TempDir, Topology, GW_IP};

const BYPASS: u16 = 18543;
const KERNEL: u16 = 18544;
const ADMIN: u16 = 18540;
/// The name the certificates serve; curl resolves it to the gateway (`--resolve`).
const NAME: &str = "gw.test";

/// `openssl req` for a self-signed certificate of `kind` ("ec" or "rsa") serving `sans`;
/// returns (certificate, key).
fn make_cert(dir: &Path, file: &str, kind: &str, sans: &str) -> (PathBuf, PathBuf) {
    let (crt, key) = (
        dir.join(format!("{file}.crt")),
        dir.join(format!("{file}.key")),
    );
    let newkey: &[&str] = match kind {
        "ec" => &["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1"],
        _ => &["-newkey", "rsa:2048"],
    };
    let o = Command::new("openssl")
        .args(["req", "-x509", "-nodes", "-days", "2"])
        .args(newkey)
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&crt)
        .args(["-subj", &format!("/CN={file}")])
        .args(["-addext", &format!("subjectAltName={sans}")])
        .output()
        .expect("running openssl req");
    assert!(
        o.status.success(),
        "openssl req: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    (crt, key)
}

/// The test's certificates: ECDSA and RSA for gw.test (and *.gw.test), and a CA file that
/// trusts both.
struct Certs {
    ec: (PathBuf, PathBuf),
    rsa: (PathBuf, PathBuf),
    ca: PathBuf,
}

impl Certs {
    fn make(dir: &Path) -> Certs {
        let sans = format!("DNS:{NAME},DNS:*.{NAME}");
        let ec = make_cert(dir, "ec", "ec", &sans);
        let rsa = make_cert(dir, "rsa", "rsa", &sans);
        let ca = dir.join("ca.pem");
        let mut both = std::fs::read(&ec.0).unwrap();
        both.extend(std::fs::read(&rsa.0).unwrap());
        std::fs::write(&ca, both).unwrap();
        Certs { ec, rsa, ca }
    }
}

/// The gateway's configuration: BYPASS (bypass path) and KERNEL (kernel path), both TLS, with
/// `certs` for gw.test and the admin endpoint; `tls_extra` goes into `[tls]`.
fn write_config(dir: &Path, iface: &str, certs: &[(&Path, &Path)], tls_extra: &str) -> PathBuf {
    let mut text = format!(
        "interface = \"{iface}\"\nshutdown_grace_secs = 2\n\n\
         [[ports]]\nport = {BYPASS}\nbypass = true\ntls = true\n\n\
         [[ports]]\nport = {KERNEL}\ntls = true\n\n\
         [admin]\nlisten = \"{GW_IP}:{ADMIN}\"\n\n\
         [app]\nmax_bytes_len = 100000000\n\n[http]\nmax_body_len = 100000000\n\n\
         [access_log]\npath = \"{}\"\n\n[tls]\n{tls_extra}\n",
        dir.join("access.log").display()
    );
    for (i, (crt, key)) in certs.iter().enumerate() {
        text += &format!(
            "[[tls.certificate]]\ncert = \"{}\"\nkey = \"{}\"\nserver_names = [\"{NAME}\", \"*.{NAME}\"]\ndefault = {}\n\n",
            crt.display(),
            key.display(),
            i == 0
        );
    }
    let path = dir.join("xgate.toml");
    std::fs::write(&path, text).expect("writing the configuration");
    path
}

fn in_client(topo: &Topology, program: &str) -> Command {
    let mut c = Command::new("ip");
    c.args(["netns", "exec", &topo.client_ns, program]);
    c
}

/// curl https://gw.test:{port}{path} from the client netns, trusting `ca`.
fn https(topo: &Topology, ca: &Path, port: u16, path: &str, extra: &[&str]) -> Output {
    in_client(topo, "curl")
        .args(["-sS", "--fail", "--max-time", "120", "--cacert"])
        .arg(ca)
        .args(["--resolve", &format!("{NAME}:{port}:{GW_IP}")])
        .args(extra)
        .arg(format!("https://{NAME}:{port}{path}"))
        .output()
        .expect("running curl")
}

/// `https`, which must succeed; its body.
fn get(topo: &Topology, ca: &Path, port: u16, path: &str, extra: &[&str]) -> Vec<u8> {
    let o = https(topo, ca, port, path, extra);
    assert!(
        o.status.success(),
        "curl :{port}{path} {extra:?}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    o.stdout
}

fn tls_topology(test: &str) -> Option<(Topology, TempDir, Certs)> {
    if !is_root() {
        eprintln!("skipping {test}: needs root");
        return None;
    }
    let topo = Topology::create();
    let dir = TempDir::new(&format!("{}-tls", topo.name));
    let certs = Certs::make(&dir.0);
    Some((topo, dir, certs))
}

/// Downloads of each size and an upload echoed back, over `version`, byte-exact.
fn transfers(topo: &Topology, ca: &Path, port: u16, version: &[&str], dir: &Path) {
    for n in [0usize, 1, 16_384, 16_385, 1_000_003, 8 << 20] {
        let body = get(topo, ca, port, &format!("/bytes/{n}"), version);
        assert!(
            body == bytes_body(n),
            "/bytes/{n} on :{port} {version:?}: {} bytes back",
            body.len()
        );
    }
    let upload = noise(3 << 20, u64::from(port));
    let file = dir.join(format!("upload-{port}"));
    std::fs::write(&file, &upload).unwrap();
    let data = format!("@{}", file.display());
    let mut args = vec![
        "--data-binary",
        &data,
        "-H",
        "Content-Type: application/octet-stream",
    ];
    args.extend_from_slice(version);
    let echoed = get(topo, ca, port, "/echo", &args);
    assert!(
        echoed == upload,
        "echo on :{port} {version:?}: {} bytes back",
        echoed.len()
    );
}

#[test]
fn https_is_served_byte_exact_on_both_paths_to_real_clients() {
    let Some((mut topo, dir, certs)) =
        tls_topology("https_is_served_byte_exact_on_both_paths_to_real_clients")
    else {
        return;
    };
    let ifname = topo.server_if.clone();
    let config = write_config(
        &dir.0,
        &ifname,
        &[(&certs.ec.0, &certs.ec.1), (&certs.rsa.0, &certs.rsa.1)],
        "",
    );
    let gw = start_xgate(&mut topo, &config, &[]);
    let ca = &certs.ca;

    // curl, both versions, both paths.
    let v12: &[&str] = &["--tlsv1.2", "--tls-max", "1.2"];
    let v13: &[&str] = &["--tlsv1.3"];
    for p in [BYPASS, KERNEL] {
        transfers(&topo, ca, p, v12, &dir.0);
        transfers(&topo, ca, p, v13, &dir.0);
    }
    settle();
    let s = status(&ifname);
    let b = port(&s, BYPASS);
    assert_eq!(num(b, "kernel_connections_total"), 0, "{b}");
    assert!(num(&b["bypass"], "requests") >= 14, "{b}");

    // The RSA certificate for a TLS 1.2 client with RSA suites only.
    let o = in_client(&topo, "curl")
        .args(["-sS", "--fail", "-v", "--max-time", "20", "--cacert"])
        .arg(ca)
        .args(["--resolve", &format!("{NAME}:{BYPASS}:{GW_IP}")])
        .args([
            "--tlsv1.2",
            "--tls-max",
            "1.2",
            "--ciphers",
            "ECDHE-RSA-AES128-GCM-SHA256",
        ])
        .arg(format!("https://{NAME}:{BYPASS}/health"))
        .output()
        .unwrap();
    let verbose = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{verbose}");
    assert!(verbose.contains("ECDHE-RSA-AES128-GCM-SHA256"), "{verbose}");

    // 100 MB each way through the bypass.
    let big = 100_000_000usize;
    let body = get(&topo, ca, BYPASS, &format!("/bytes/{big}"), &[]);
    assert!(
        body.len() == big && body == bytes_body(big),
        "{} bytes",
        body.len()
    );
    drop(body);
    let upload = noise(big, 7);
    let file = dir.0.join("upload-100m");
    std::fs::write(&file, &upload).unwrap();
    let data = format!("@{}", file.display());
    let echoed = get(&topo, ca, BYPASS, "/echo", &["--data-binary", &data]);
    assert!(echoed == upload, "100 MB echo: {} bytes back", echoed.len());
    drop((echoed, upload));
    let _ = std::fs::remove_file(&file);

    // openssl s_client: SNI, ALPN, and a resumed session (TLS 1.3 ticket, TLS 1.2 ticket).
    for (p, version) in [
        (BYPASS, "-tls1_3"),
        (KERNEL, "-tls1_2"),
        (BYPASS, "-tls1_2"),
    ] {
        let sess = dir.0.join(format!("sess-{p}{version}"));
        let run = |resume: bool| -> String {
            let mut c = in_client(&topo, "openssl");
            c.args(["s_client", "-connect", &format!("{GW_IP}:{p}")])
                .args(["-servername", NAME, "-alpn", "http/1.1", version, "-CAfile"])
                .arg(ca)
                .arg("-ign_eof")
                .arg(if resume { "-sess_in" } else { "-sess_out" })
                .arg(&sess)
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped());
            let mut child = c.spawn().expect("openssl s_client");
            use std::io::Write;
            child
                .stdin
                .take()
                .unwrap()
                .write_all(b"GET /health HTTP/1.1\r\nHost: gw.test\r\nConnection: close\r\n\r\n")
                .unwrap();
            let o = wait_output(child, Duration::from_secs(20));
            String::from_utf8_lossy(&o.stdout).into_owned()
        };
        let first = run(false);
        assert!(first.contains("Verify return code: 0 (ok)"), "{first}");
        assert!(first.contains("ALPN protocol: http/1.1"), "{first}");
        assert!(first.contains("HTTP/1.1 200 OK"), "{first}");
        let second = run(true);
        assert!(second.contains("Reused,"), "port {p} {version}: {second}");
        assert!(second.contains("HTTP/1.1 200 OK"), "{second}");
    }

    // curl resumes within one run (its session cache): three URLs, three connections
    // (Connection: close), the second and third resumed, on each path.
    settle();
    let resumed = |scrape: &prometheus_parse::Scrape, path: &str| {
        metric(
            scrape,
            "xgate_tls_handshakes_total",
            &[("path", path), ("kind", "resumed")],
        )
    };
    let before = scrape_metrics(&topo, ADMIN);
    for p in [BYPASS, KERNEL] {
        let url = format!("https://{NAME}:{p}/health");
        let body = get(
            &topo,
            ca,
            p,
            "/health",
            &[
                "-H",
                "Connection: close",
                &url,
                "-H",
                "Connection: close",
                &url,
            ],
        );
        assert_eq!(body, b"okokok");
    }
    settle();
    let after = scrape_metrics(&topo, ADMIN);
    for path in ["bypass", "kernel"] {
        assert!(
            resumed(&after, path) - resumed(&before, path) >= 2.0,
            "{path}: curl's later connections resumed"
        );
    }

    // A client that presents a certificate nobody asked for (this server requests none): the
    // handshake goes on, the certificate is never sent (TLS sends it only on request).
    let o = in_client(&topo, "openssl")
        .args(["s_client", "-connect", &format!("{GW_IP}:{BYPASS}")])
        .args(["-servername", NAME, "-CAfile"])
        .arg(ca)
        .arg("-cert")
        .arg(&certs.rsa.0)
        .arg("-key")
        .arg(&certs.rsa.1)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&o.stdout);
    assert!(said.contains("Verify return code: 0 (ok)"), "{said}");
    assert!(
        said.contains("No client certificate CA names sent"),
        "{said}"
    );

    // Python's ssl module: verified, SNI, TLS 1.3, a keep-alive request.
    let script = format!(
        "import socket, ssl\n\
         ctx = ssl.create_default_context(cafile={ca:?})\n\
         s = ctx.wrap_socket(socket.create_connection(('{GW_IP}', {KERNEL})), server_hostname='{NAME}')\n\
         s.sendall(b'GET /bytes/100000 HTTP/1.1\\r\\nHost: gw.test\\r\\nConnection: close\\r\\n\\r\\n')\n\
         data = b''\n\
         while True:\n\
         \x20   chunk = s.recv(65536)\n\
         \x20   if not chunk: break\n\
         \x20   data += chunk\n\
         head, body = data.split(b'\\r\\n\\r\\n', 1)\n\
         print(s.version(), head.split(b'\\r\\n')[0].decode(), len(body))\n",
        ca = ca.display().to_string(),
    );
    let o = in_client(&topo, "python3")
        .args(["-c", &script])
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&o.stdout);
    assert!(
        o.status.success(),
        "python: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert_eq!(said.trim(), "TLSv1.3 HTTP/1.1 200 OK 100000");

    // Plain HTTP on a TLS port: nginx's 400, then a close.
    let o = in_client(&topo, "curl")
        .args(["-sS", "--max-time", "10", "-o", "-", "-w", "%{http_code}"])
        .arg(format!("http://{GW_IP}:{BYPASS}/health"))
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(text.ends_with("400"), "{text}");
    assert!(
        text.contains("plain HTTP request was sent to an HTTPS port"),
        "{text}"
    );

    // A server name with no certificate gets the default one (curl then refuses it: it does
    // not cover the name).
    let o = in_client(&topo, "curl")
        .args(["-sS", "--max-time", "10", "--cacert"])
        .arg(ca)
        .args(["--resolve", &format!("unknown.test:{KERNEL}:{GW_IP}")])
        .arg(format!("https://unknown.test:{KERNEL}/health"))
        .output()
        .unwrap();
    assert!(!o.status.success());
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("unknown.test"),
        "{o:?}"
    );

    // The counters, both paths.
    settle();
    let scrape = scrape_metrics(&topo, ADMIN);
    let m = |name: &str, labels: &[(&str, &str)]| metric(&scrape, name, labels);
    for path in ["bypass", "kernel"] {
        let full = m(
            "xgate_tls_handshakes_total",
            &[("path", path), ("kind", "full")],
        );
        let resumed = m(
            "xgate_tls_handshakes_total",
            &[("path", path), ("kind", "resumed")],
        );
        let v12 = m(
            "xgate_tls_versions_total",
            &[("path", path), ("version", "1.2")],
        );
        let v13 = m(
            "xgate_tls_versions_total",
            &[("path", path), ("version", "1.3")],
        );
        assert!(
            full >= 7.0 && resumed >= 1.0,
            "{path}: {full} full, {resumed} resumed"
        );
        assert!(
            v12 >= 7.0 && v13 >= 7.0,
            "{path}: {v12} TLS 1.2, {v13} TLS 1.3"
        );
        assert_eq!(v12 + v13, full + resumed, "{path}");
    }
    let plain = m(
        "xgate_tls_failures_total",
        &[("path", "bypass"), ("reason", "plain_http")],
    );
    assert_eq!(plain, 1.0);
    let default = m("xgate_tls_default_certificate_total", &[("path", "kernel")]);
    assert_eq!(default, 1.0);
    let rsa = m(
        "xgate_tls_cipher_suites_total",
        &[
            ("path", "bypass"),
            ("suite", "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256"),
        ],
    );
    assert!(rsa >= 1.0);
    let s = status(&ifname);
    assert_eq!(pollers_sum(&s, "rsts_out"), 0, "{s}");

    // The access log names each request's TLS version and server name.
    let log = dir.0.join("access.log");
    let has = |needle: &str| {
        std::fs::read_to_string(&log)
            .unwrap_or_default()
            .lines()
            .any(|l| l.contains(needle))
    };
    for needle in [
        format!("bypass {BYPASS} - - TLSv1.3 {NAME}"),
        format!("bypass {BYPASS} - - TLSv1.2 {NAME}"),
        format!("kernel {KERNEL} - - TLSv1.3 {NAME}"),
        format!("kernel {KERNEL} - - TLSv1.2 {NAME}"),
    ] {
        common::wait_for(&needle, Duration::from_secs(5), || has(&needle));
    }

    terminate(&mut topo, gw);
}

/// The output of `child`, which must exit within `limit` (killed by PID otherwise).
fn wait_output(mut child: Child, limit: Duration) -> Output {
    let start = Instant::now();
    loop {
        if child.try_wait().expect("waiting").is_some() {
            return child.wait_with_output().expect("output");
        }
        if start.elapsed() > limit {
            let _ = child.kill();
            let o = child.wait_with_output().expect("output");
            panic!("timed out: {}", String::from_utf8_lossy(&o.stdout));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A client loop over HTTPS until `stop` exists: a fresh connection, five requests on it;
/// prints "requests OK FAILED".
fn https_loop(topo: &Topology, ca: &Path, port: u16, stop: &Path) -> Child {
    let url = format!("https://{NAME}:{port}/health");
    let script = format!(
        "ok=0; failed=0\n\
         while [ ! -e {stop:?} ]; do\n\
         codes=$(curl -sS --max-time 5 --cacert {ca:?} --resolve {NAME}:{port}:{GW_IP} \
         -w '%{{http_code}}\\n' -o /dev/null {url} -o /dev/null {url} -o /dev/null {url} \
         -o /dev/null {url} -o /dev/null {url}) || true\n\
         n=$(printf '%s\\n' \"$codes\" | grep -c '^200$' || true)\n\
         ok=$((ok + n)); failed=$((failed + 5 - n))\n\
         done\n\
         echo \"requests $ok $failed\"\n",
        stop = stop.display().to_string(),
        ca = ca.display().to_string(),
    );
    in_client(topo, "bash")
        .args(["-c", &script])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("client loop")
}

#[test]
fn switching_a_tls_port_under_https_load_fails_no_request() {
    let Some((mut topo, dir, certs)) =
        tls_topology("switching_a_tls_port_under_https_load_fails_no_request")
    else {
        return;
    };
    let ifname = topo.server_if.clone();
    let config = write_config(&dir.0, &ifname, &[(&certs.ec.0, &certs.ec.1)], "");
    let gw = start_xgate(&mut topo, &config, &[]);
    let stop = dir.0.join("stop");
    let loops: Vec<Child> = (0..2)
        .map(|_| https_loop(&topo, &certs.ca, BYPASS, &stop))
        .collect();
    switch_rounds(&ifname, BYPASS, 3, "HTTPS");
    std::fs::write(&stop, b"").unwrap();
    let outputs: Vec<Output> = loops
        .into_iter()
        .map(|l| wait_output(l, Duration::from_secs(30)))
        .collect();
    let answered = client_loop_totals(&outputs, "HTTPS");
    assert!(answered > 50, "HTTPS client loops answered {answered}");
    settle();
    let s = status(&ifname);
    assert_eq!(pollers_sum(&s, "rsts_out"), 0, "{s}");
    // Not the kernel path's peer resets: curl closes its socket right after its close_notify,
    // and ours (RFC 8446 §6.1: sent before closing our side) can reach it closed, whose RST
    // the kernel path may count while it lingers. No request failed (above), and the
    // engines never reset a connection.

    let scrape = scrape_metrics(&topo, ADMIN);
    for path in ["bypass", "kernel"] {
        let full = metric(
            &scrape,
            "xgate_tls_handshakes_total",
            &[("path", path), ("kind", "full")],
        );
        assert!(full >= 10.0, "{path}: {full} handshakes");
    }
    eprintln!("TLS: {answered} requests across 3 off/on switches, none failed, no reset");
    terminate(&mut topo, gw);
}

/// The SHA-256 fingerprint of the certificate the gateway presents on `port` for gw.test.
fn presented(topo: &Topology, p: u16) -> String {
    let mut c = in_client(topo, "openssl");
    c.args([
        "s_client",
        "-connect",
        &format!("{GW_IP}:{p}"),
        "-servername",
        NAME,
    ])
    .stdin(Stdio::null())
    .stdout(Stdio::piped())
    .stderr(Stdio::null());
    let o = wait_output(c.spawn().unwrap(), Duration::from_secs(10));
    let mut x509 = Command::new("openssl")
        .args(["x509", "-noout", "-fingerprint", "-sha256"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    x509.stdin.take().unwrap().write_all(&o.stdout).unwrap();
    let o = x509.wait_with_output().unwrap();
    String::from_utf8_lossy(&o.stdout).trim().to_string()
}

fn fingerprint(crt: &Path) -> String {
    let o = Command::new("openssl")
        .args(["x509", "-noout", "-fingerprint", "-sha256", "-in"])
        .arg(crt)
        .output()
        .unwrap();
    String::from_utf8_lossy(&o.stdout).trim().to_string()
}

#[test]
fn a_reload_swaps_certificates_without_dropping_a_connection_and_refuses_a_bad_pair() {
    let Some((mut topo, dir, certs)) = tls_topology(
        "a_reload_swaps_certificates_without_dropping_a_connection_and_refuses_a_bad_pair",
    ) else {
        return;
    };
    let ifname = topo.server_if.clone();
    let config = write_config(&dir.0, &ifname, &[(&certs.ec.0, &certs.ec.1)], "");
    let gw = start_xgate(&mut topo, &config, &[]);
    for p in [BYPASS, KERNEL] {
        assert_eq!(presented(&topo, p), fingerprint(&certs.ec.0));
    }
    // A connection held open across the reload, on each path: Python, keep-alive.
    let held = |p: u16| -> Child {
        let script = format!(
            "import socket, ssl, sys\n\
             ctx = ssl.create_default_context(cafile={ca:?})\n\
             s = ctx.wrap_socket(socket.create_connection(('{GW_IP}', {p})), server_hostname='{NAME}')\n\
             f = s.makefile('rb')\n\
             for line in sys.stdin:\n\
             \x20   s.sendall(b'GET /bytes/1000 HTTP/1.1\\r\\nHost: gw.test\\r\\n\\r\\n')\n\
             \x20   status = f.readline()\n\
             \x20   n = 0\n\
             \x20   while True:\n\
             \x20       h = f.readline()\n\
             \x20       if h.lower().startswith(b'content-length:'): n = int(h.split(b':')[1])\n\
             \x20       if h == b'\\r\\n': break\n\
             \x20   body = f.read(n)\n\
             \x20   print(status.decode().strip(), len(body), flush=True)\n",
            ca = certs.ca.display().to_string(),
        );
        in_client(&topo, "python3")
            .args(["-c", &script])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    };
    use std::io::{BufRead, BufReader, Write};
    let mut clients: Vec<(Child, BufReader<std::process::ChildStdout>)> = [BYPASS, KERNEL]
        .into_iter()
        .map(|p| {
            let mut c = held(p);
            let out = BufReader::new(c.stdout.take().unwrap());
            (c, out)
        })
        .collect();
    let ask = |clients: &mut Vec<(Child, BufReader<std::process::ChildStdout>)>| {
        for (c, out) in clients.iter_mut() {
            c.stdin.as_mut().unwrap().write_all(b"go\n").unwrap();
            let mut line = String::new();
            out.read_line(&mut line).unwrap();
            assert_eq!(line.trim(), "HTTP/1.1 200 OK 1000");
        }
    };
    ask(&mut clients);

    // The RSA certificate instead: new connections get it, the held ones go on.
    write_config(&dir.0, &ifname, &[(&certs.rsa.0, &certs.rsa.1)], "");
    let reload = || {
        Command::new(env!("CARGO_BIN_EXE_xgate"))
            .args(["reload", "--iface", &ifname])
            .output()
            .expect("xgate reload")
    };
    let o = reload();
    assert!(
        o.status.success(),
        "reload: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    for p in [BYPASS, KERNEL] {
        let deadline = Instant::now() + Duration::from_secs(10);
        while presented(&topo, p) != fingerprint(&certs.rsa.0) {
            assert!(
                Instant::now() < deadline,
                "port {p} still presents the old certificate"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
    ask(&mut clients);

    // A key that is not the certificate's: refused, naming the file; nothing changes.
    write_config(&dir.0, &ifname, &[(&certs.ec.0, &certs.rsa.1)], "");
    let o = reload();
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(!o.status.success(), "{said}");
    assert!(said.contains(&certs.rsa.1.display().to_string()), "{said}");
    for p in [BYPASS, KERNEL] {
        assert_eq!(presented(&topo, p), fingerprint(&certs.rsa.0));
    }
    ask(&mut clients);
    for (mut c, _) in clients {
        drop(c.stdin.take());
        let _ = c.wait();
    }
    terminate(&mut topo, gw);
}

/// A flood of ClientHellos (each a full handshake for the server, nothing for the client: the
/// flood never answers) on both paths while an established client keeps asking on its own
/// connection: every one of its requests is answered, none slowly beyond a generous bound,
/// and the per-round budget is seen to put handshakes off.
#[test]
fn a_handshake_flood_leaves_established_clients_served() {
    let Some((mut topo, dir, certs)) =
        tls_topology("a_handshake_flood_leaves_established_clients_served")
    else {
        return;
    };
    let ifname = topo.server_if.clone();
    let config = write_config(
        &dir.0,
        &ifname,
        &[(&certs.ec.0, &certs.ec.1)],
        "handshakes_per_round = 1\nhandshake_timeout_ms = 2000",
    );
    let gw = start_xgate(&mut topo, &config, &[]);
    for p in [BYPASS, KERNEL] {
        // The established client: one connection, a request every 5 ms for 6 s; prints the
        // count and the slowest answer in ms.
        let client = format!(
            "import socket, ssl, time\n\
             ctx = ssl.create_default_context(cafile={ca:?})\n\
             s = ctx.wrap_socket(socket.create_connection(('{GW_IP}', {p})), server_hostname='{NAME}')\n\
             s.settimeout(5)\n\
             f = s.makefile('rb')\n\
             n = 0; worst = 0.0; end = time.time() + 6\n\
             while time.time() < end:\n\
             \x20   t = time.time()\n\
             \x20   s.sendall(b'GET /health HTTP/1.1\\r\\nHost: gw.test\\r\\n\\r\\n')\n\
             \x20   assert f.readline() == b'HTTP/1.1 200 OK\\r\\n'\n\
             \x20   while f.readline() != b'\\r\\n': pass\n\
             \x20   f.read(2)\n\
             \x20   worst = max(worst, time.time() - t); n += 1\n\
             \x20   time.sleep(0.005)\n\
             print(n, int(worst * 1000))\n",
            ca = certs.ca.display().to_string(),
        );
        // The flood: one recorded ClientHello, sent in bursts (100 connections opened, then
        // the ClientHello on each at once, then all closed) for 5 s.
        let flood = format!(
            "import socket, ssl, time\n\
             ctx = ssl.create_default_context(); ctx.check_hostname = False\n\
             ctx.verify_mode = ssl.CERT_NONE\n\
             i, o = ssl.MemoryBIO(), ssl.MemoryBIO()\n\
             t = ctx.wrap_bio(i, o, server_hostname='{NAME}')\n\
             try: t.do_handshake()\n\
             except ssl.SSLWantReadError: pass\n\
             hello = o.read()\n\
             sent = 0; end = time.time() + 5\n\
             while time.time() < end:\n\
             \x20   held = []\n\
             \x20   for _ in range(100):\n\
             \x20       try: held.append(socket.create_connection(('{GW_IP}', {p}), timeout=1))\n\
             \x20       except OSError: pass\n\
             \x20   for c in held:\n\
             \x20       try: c.sendall(hello); sent += 1\n\
             \x20       except OSError: pass\n\
             \x20   time.sleep(0.05)\n\
             \x20   for c in held: c.close()\n\
             print(sent)\n"
        );
        let spawn = |script: &str| {
            in_client(&topo, "python3")
                .args(["-c", script])
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        };
        // Established first (its handshake done), then the flood.
        let established = spawn(&client);
        std::thread::sleep(Duration::from_millis(500));
        let floods: Vec<Child> = (0..2).map(|_| spawn(&flood)).collect();
        let o = wait_output(established, Duration::from_secs(30));
        let said = String::from_utf8_lossy(&o.stdout).into_owned();
        assert!(
            o.status.success(),
            "port {p}: the established client failed: {}\n{}",
            String::from_utf8_lossy(&o.stderr),
            serde_json::to_string_pretty(&status(&ifname)).unwrap()
        );
        let mut sent = 0u64;
        for f in floods {
            let o = wait_output(f, Duration::from_secs(30));
            sent += String::from_utf8_lossy(&o.stdout)
                .trim()
                .parse::<u64>()
                .unwrap_or(0);
        }
        let v: Vec<u64> = said
            .split_whitespace()
            .map(|x| x.parse().unwrap())
            .collect();
        eprintln!(
            "port {p}: {} requests on the established connection, slowest {} ms, under {sent} \
             flood ClientHellos",
            v[0], v[1]
        );
        assert!(sent > 1000, "the flood sent only {sent} ClientHellos");
        assert!(v[0] > 100, "only {} requests answered", v[0]);
        assert!(v[1] < 1000, "an answer took {} ms", v[1]);
    }
    settle();
    let scrape = scrape_metrics(&topo, ADMIN);
    for path in ["bypass", "kernel"] {
        let deferred = metric(
            &scrape,
            "xgate_tls_handshakes_deferred_total",
            &[("path", path)],
        );
        let full = metric(
            &scrape,
            "xgate_tls_handshakes_total",
            &[("path", path), ("kind", "full")],
        );
        eprintln!("{path}: {deferred} handshakes put off, {full} completed");
        assert!(deferred > 0.0, "{path}: the budget never acted");
    }
    let s = status(&ifname);
    assert!(num(&s["kernel_path"], "connections") < 2000, "{s}");
    terminate(&mut topo, gw);
}

/// SIGTERM drains TLS connections like plain ones: a keep-alive connection idle between
/// requests is closed at once, cleanly (close_notify, then FIN), on each path, and the
/// gateway exits; after kill -9 the bypass TLS port is refused by the kernel, nothing
/// black-holed.
#[test]
fn sigterm_drains_tls_connections_and_kill_9_falls_back_to_the_kernel() {
    let Some((mut topo, dir, certs)) =
        tls_topology("sigterm_drains_tls_connections_and_kill_9_falls_back_to_the_kernel")
    else {
        return;
    };
    let ifname = topo.server_if.clone();
    let config = write_config(&dir.0, &ifname, &[(&certs.ec.0, &certs.ec.1)], "");
    let gw = start_xgate(&mut topo, &config, &[]);
    // Each held client: "go" asks for /health and prints the status line; "end" waits for
    // the server's close and prints "clean" (close_notify seen) or the error.
    let script = |p: u16| {
        format!(
            "import socket, ssl, sys\n\
             ctx = ssl.create_default_context(cafile={ca:?})\n\
             s = ctx.wrap_socket(socket.create_connection(('{GW_IP}', {p})), server_hostname='{NAME}')\n\
             s.settimeout(10)\n\
             f = s.makefile('rb')\n\
             for line in sys.stdin:\n\
             \x20   if line.strip() == 'go':\n\
             \x20       s.sendall(b'GET /health HTTP/1.1\\r\\nHost: gw.test\\r\\n\\r\\n')\n\
             \x20       status = f.readline().decode().strip()\n\
             \x20       while f.readline() not in (b'\\r\\n', b''): pass\n\
             \x20       f.read(2)\n\
             \x20       print(status, flush=True)\n\
             \x20   else:\n\
             \x20       try: print('clean' if s.recv(1) == b'' else 'data', flush=True)\n\
             \x20       except Exception as e: print(type(e).__name__, flush=True)\n",
            ca = certs.ca.display().to_string(),
        )
    };
    use std::io::{BufRead, BufReader, Write};
    let mut held: Vec<(Child, BufReader<std::process::ChildStdout>)> = [BYPASS, KERNEL]
        .into_iter()
        .map(|p| {
            let mut c = in_client(&topo, "python3")
                .args(["-c", &script(p)])
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(Stdio::inherit())
                .spawn()
                .unwrap();
            let out = BufReader::new(c.stdout.take().unwrap());
            (c, out)
        })
        .collect();
    let say = |held: &mut Vec<(Child, BufReader<std::process::ChildStdout>)>, what: &[u8]| {
        held.iter_mut()
            .map(|(c, out)| {
                c.stdin.as_mut().unwrap().write_all(what).unwrap();
                let mut line = String::new();
                out.read_line(&mut line).unwrap();
                line.trim().to_string()
            })
            .collect::<Vec<String>>()
    };
    assert_eq!(
        say(&mut held, b"go\n"),
        ["HTTP/1.1 200 OK", "HTTP/1.1 200 OK"]
    );
    let pid = topo.children[gw].id();
    // SAFETY: kill(2) on the PID of a child this test spawned and has not reaped.
    assert_eq!(unsafe { libc::kill(pid as i32, libc::SIGTERM) }, 0);
    assert_eq!(
        say(&mut held, b"end\n"),
        ["clean", "clean"],
        "idle TLS connections end with close_notify on both paths"
    );
    for (mut c, _) in held {
        drop(c.stdin.take());
        let _ = c.wait();
    }
    let deadline = Instant::now() + Duration::from_secs(20);
    let st = loop {
        if let Some(st) = topo.children[gw].try_wait().unwrap() {
            break st;
        }
        assert!(
            Instant::now() < deadline,
            "xgate did not exit after SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(st.success(), "xgate exited with {st}");

    // kill -9: the kernel refuses the bypass TLS port at once; no XDP left behind.
    let gw = start_xgate(&mut topo, &config, &[]);
    assert_eq!(get(&topo, &certs.ca, BYPASS, "/health", &[]), b"ok");
    topo.children[gw].kill().expect("kill -9");
    let killed = Instant::now();
    let _ = topo.children[gw].wait();
    topo.assert_refused_without_xdp(BYPASS, killed);
}

/// A request that came over TLS and goes to an upstream says so: `X-Forwarded-Proto: https`
/// and `Forwarded: ...;proto=https`, on both paths; the upstream's answer comes back through
/// TLS byte-exact.
#[test]
fn proxied_https_requests_tell_the_upstream_https() {
    let Some((mut topo, dir, certs)) =
        tls_topology("proxied_https_requests_tell_the_upstream_https")
    else {
        return;
    };
    use std::io::{Read as _, Write as _};
    // The upstream answers with the forwarding fields it got, as its body.
    let upstream = common::upstream::Listener::start(&topo.server_ns.clone(), |mut s, _| {
        let mut buf = Vec::new();
        let Some(end) = common::upstream::fill_until(&mut s, &mut buf, b"\r\n\r\n") else {
            return;
        };
        let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
        let fields: Vec<&str> = head
            .lines()
            .filter(|l| l.starts_with("x-forwarded-proto:") || l.starts_with("forwarded:"))
            .collect();
        let body = fields.join("\n");
        let _ = write!(
            s,
            "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        );
        let _ = s.read(&mut [0u8; 1]);
    });
    let ifname = topo.server_if.clone();
    let config = write_config(&dir.0, &ifname, &[(&certs.ec.0, &certs.ec.1)], "");
    let mut text = std::fs::read_to_string(&config).unwrap();
    text += &format!(
        "[[upstream]]\nname = \"origin\"\nservers = [{{ address = \"{}\" }}]\n\n\
         [[route]]\npath_prefix = \"/up\"\nupstream = \"origin\"\nforwarded = true\n",
        upstream.addr
    );
    std::fs::write(&config, text).unwrap();
    let gw = start_xgate(&mut topo, &config, &[]);
    for p in [BYPASS, KERNEL] {
        let body = String::from_utf8(get(&topo, &certs.ca, p, "/up/x", &[])).unwrap();
        assert!(body.contains("x-forwarded-proto: https"), ":{p} {body}");
        assert!(body.contains("proto=https"), ":{p} {body}");
    }
    terminate(&mut topo, gw);
    drop(upstream);
}
