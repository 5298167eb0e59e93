//! Root-only end-to-end proof that IPv6 clients are served as IPv4 ones are, by `xgate run`
//! with its default listen address (`::`, both families): curl over IPv6 through the bypass
//! path and the kernel path, byte-exact both ways; IPv4 on the same ports; `xgate status`
//! showing that the bypass, not the kernel, served the bypass port's IPv6 connections; wrk
//! over IPv6 through the bypass; `xgate bypass off/on` under IPv6 client loops with no failed
//! request and no reset.
//!
//! The topology is tests/common's veth pair with an IPv6 address on each end as well
//! (`Topology::add_ipv6`: fd78:6761:7465::1 the gateway, ::2 the client). Every wait is
//! bounded; everything created is removed, also on panic. Skips when not run as root.

mod common;

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::status::{
    client_loop_totals, metric, num, pollers_sum, port, scrape_metrics, settle, status,
    switch_rounds,
};
use common::{bytes_body, is_root, noise, spawn_xgate, terminate, Topology, GW_IP};
use xgate_testnet::SERVER_IP6;

const BYPASS: u16 = 18380;
const KERNEL: u16 = 18381;
const ADMIN: u16 = 18379;

/// `http://[fd78:6761:7465::1]:{port}{path}`.
fn url6(port: u16, path: &str) -> String {
    format!("http://[{SERVER_IP6}]:{port}{path}")
}

/// curl in the client netns; the body on HTTP success, a panic with curl's message otherwise.
fn curl(topo: &Topology, url: &str, extra: &[&str]) -> Vec<u8> {
    let o = Command::new("ip")
        .args(["netns", "exec", &topo.client_ns, "curl", "-sS", "--fail"])
        .args(["--max-time", "20"])
        .args(extra)
        .arg(url)
        .output()
        .expect("running curl");
    assert!(
        o.status.success(),
        "curl {url} {extra:?}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    o.stdout
}

/// Downloads of every size and an upload echoed back, over IPv6 to `port`, byte-exact;
/// returns the number of connections made.
fn transfers(topo: &Topology, port: u16, dir: &Path) -> u64 {
    let sizes = [0usize, 1, 1_459, 65_536, 1_000_003, 8 << 20];
    for n in sizes {
        let body = curl(topo, &url6(port, &format!("/bytes/{n}")), &[]);
        assert!(
            body == bytes_body(n),
            "/bytes/{n} over IPv6 to :{port}: {} bytes back",
            body.len()
        );
    }
    let upload = noise(3 << 20, u64::from(port));
    let file = dir.join(format!("upload-{port}"));
    std::fs::write(&file, &upload).expect("writing the upload");
    let data = format!("@{}", file.display());
    let echoed = curl(
        topo,
        &url6(port, "/echo"),
        &[
            "--data-binary",
            &data,
            "-H",
            "Content-Type: application/octet-stream",
        ],
    );
    assert!(
        echoed == upload,
        "POST /echo over IPv6 to :{port}: {} bytes back",
        echoed.len()
    );
    sizes.len() as u64 + 1
}

/// `xgate run` in `topo`'s gateway namespace: BYPASS on the bypass path, KERNEL on the kernel
/// path, the admin endpoint, then `extra` (no `--listen-addr`: the default, `::`). Returns its
/// index in `topo.children` once it says it is ready.
fn start_xgate(topo: &mut Topology, extra: &[&str]) -> usize {
    let (bypass, kernel) = (BYPASS.to_string(), KERNEL.to_string());
    let admin = format!("{GW_IP}:{ADMIN}");
    let (iface, ns) = (topo.server_if.clone(), topo.server_ns.clone());
    let mut args = vec!["--iface", &iface, "--netns", &ns, "--port", &bypass];
    args.extend([
        "--port",
        &kernel,
        "--bypass",
        &bypass,
        "--shutdown-grace-secs",
        "2",
    ]);
    args.extend(["--admin-listen", &admin]);
    args.extend_from_slice(extra);
    spawn_xgate(topo, &args).0
}

/// tests/common's veth pair with IPv6 addresses added, or `None` (the test skipped) when not
/// root.
fn ipv6_topology(test: &str) -> Option<Topology> {
    if !is_root() {
        eprintln!("skipping {test}: needs root");
        return None;
    }
    let topo = Topology::create();
    topo.add_ipv6().expect("IPv6 addresses on the veth pair");
    Some(topo)
}

#[test]
fn ipv6_clients_are_served_on_both_paths_and_through_the_switch() {
    let Some(mut topo) =
        ipv6_topology("ipv6_clients_are_served_on_both_paths_and_through_the_switch")
    else {
        return;
    };
    let ifname = topo.server_if.clone();
    let dir = common::TempDir::new(&format!("{}-ipv6", topo.name));
    let gw = start_xgate(&mut topo, &[]);

    // The bypass port over IPv6: served by the engines, not by the kernel listener beside it.
    let before = status(&ifname);
    let conns = transfers(&topo, BYPASS, &dir.0);
    settle();
    let after = status(&ifname);
    let (b0, b1) = (port(&before, BYPASS), port(&after, BYPASS));
    assert!(
        num(b1, "syns_steered") - num(b0, "syns_steered") >= conns,
        "every IPv6 SYN to the bypass port was steered: {b1}"
    );
    assert_eq!(num(b1, "kernel_connections_total"), 0, "{b1}");
    assert!(
        num(b1, "redirected_ipv6") - num(b0, "redirected_ipv6") >= conns * 3,
        "the bypass port's segments counted as IPv6: {b1}"
    );
    assert!(
        num(&b1["bypass"], "requests") - num(&b0["bypass"], "requests") >= conns,
        "{b1}"
    );
    let tcp = &after["bypass_tcp"];
    assert_eq!(num(&tcp["drops"], "malformed"), 0, "{tcp}");

    // IPv4 on the same port still works: one dual-stack listener, one steering program.
    let v4 = curl(&topo, &format!("http://{GW_IP}:{BYPASS}/bytes/70000"), &[]);
    assert!(v4 == bytes_body(70_000));

    // The kernel port over IPv6: passed by XDP, accepted by the dual-stack listener.
    let conns = transfers(&topo, KERNEL, &dir.0);
    settle();
    let s = status(&ifname);
    let k = port(&s, KERNEL);
    assert_eq!(num(k, "redirected"), 0, "{k}");
    assert!(num(k, "kernel_connections_total") >= conns, "{k}");
    assert!(num(&k["kernel"], "requests") >= conns, "{k}");
    assert_eq!(
        num(k, "kernel_connections_ipv6"),
        num(k, "kernel_connections_total"),
        "every kernel connection so far is an IPv6 client's: {k}"
    );
    // The same per family on the metrics page, both paths.
    let scrape = scrape_metrics(&topo, ADMIN);
    let family = |name: &str, family: &str| metric(&scrape, name, &[("family", family)]);
    let kernel_v6 = family("xgate_kernel_connections_accepted_total", "ipv6");
    assert_eq!(kernel_v6, num(k, "kernel_connections_ipv6") as f64);
    assert!(kernel_v6 >= conns as f64);
    let bypass_v6 = family("xgate_bypass_tcp_connections_accepted_total", "ipv6");
    let bypass_v4 = family("xgate_bypass_tcp_connections_accepted_total", "ipv4");
    assert!(
        bypass_v6 >= conns as f64 && bypass_v4 >= 1.0,
        "bypass accepted: {bypass_v6} IPv6, {bypass_v4} IPv4"
    );
    // An IPv4 client of the dual-stack listener is counted, but not as IPv6.
    let v4 = curl(&topo, &format!("http://{GW_IP}:{KERNEL}/bytes/10"), &[]);
    assert!(v4 == bytes_body(10));
    settle();
    let s = status(&ifname);
    let k = port(&s, KERNEL);
    assert_eq!(
        num(k, "kernel_connections_total") - num(k, "kernel_connections_ipv6"),
        1,
        "{k}"
    );

    // wrk over IPv6 through the bypass: keep-alive requests on 8 connections, no error.
    if Command::new("wrk").arg("--version").output().is_ok() {
        let o = Command::new("ip")
            .args([
                "netns",
                "exec",
                &topo.client_ns,
                "wrk",
                "-t1",
                "-c8",
                "-d2s",
            ])
            .arg(url6(BYPASS, "/bytes/4096"))
            .output()
            .expect("running wrk");
        let text = String::from_utf8_lossy(&o.stdout);
        eprintln!("wrk over IPv6 through the bypass:\n{text}");
        assert!(o.status.success(), "{text}");
        assert!(
            !text.contains("Non-2xx") && !text.contains("Socket errors"),
            "{text}"
        );
        assert!(text.contains("requests in"), "{text}");
    }

    // Switching the port under IPv6 client loops: no failed request, no reset.
    let stop = dir.0.join("stop");
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/demo/client_loop.sh");
    let host = format!("[{SERVER_IP6}]");
    let loops: Vec<Child> = (0..2)
        .map(|_| {
            Command::new("ip")
                .args(["netns", "exec", &topo.client_ns, "bash"])
                .arg(&script)
                .args([&host, &BYPASS.to_string()])
                .arg(&stop)
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .expect("client loop")
        })
        .collect();
    switch_rounds(&ifname, BYPASS, 3, "IPv6");
    std::fs::write(&stop, b"").expect("stop file");
    let deadline = Instant::now() + Duration::from_secs(30);
    let outputs: Vec<std::process::Output> = loops
        .into_iter()
        .map(|l| l.wait_with_output().expect("client loop"))
        .collect();
    assert!(Instant::now() < deadline, "the client loops did not stop");
    let answered = client_loop_totals(&outputs, "IPv6");
    assert!(answered > 50, "IPv6 client loops answered {answered}");
    settle();
    let s = status(&ifname);
    let rsts = pollers_sum(&s, "rsts_out");
    assert_eq!(rsts, 0, "the bypass engines reset a connection: {s}");
    assert_eq!(num(&s["kernel_path"], "resets"), 0, "{s}");
    eprintln!("IPv6: {answered} requests across 3 off/on switches, none failed, no reset");

    // SIGTERM: the gateway drains and exits cleanly.
    terminate(&mut topo, gw);
}

/// curl in the client netns, 5 s at most, whatever it gets.
fn curl_once(topo: &Topology, url: &str) -> std::process::Output {
    Command::new("ip")
        .args([
            "netns",
            "exec",
            &topo.client_ns,
            "curl",
            "-sS",
            "--max-time",
            "5",
            url,
        ])
        .output()
        .expect("running curl")
}

/// Whether curl gets a connection refused (a RST to its SYN) from `url`.
fn refused(topo: &Topology, url: &str) -> bool {
    // curl's exit code 7: failed to connect (refused).
    curl_once(topo, url).status.code() == Some(7)
}

/// Rule 3a of docs/steering.md: with a `listen_addr` of one family, the other family's
/// clients are refused on the bypass port as on the kernel port (the kernel answers them as a
/// closed port), counted as `no_listener`; the listen address's own family is served by the
/// bypass. An IPv4 address, then a (v6-only) IPv6 one.
#[test]
fn a_port_serves_only_the_family_of_its_listen_address() {
    let Some(mut topo) = ipv6_topology("a_port_serves_only_the_family_of_its_listen_address")
    else {
        return;
    };
    let ifname = topo.server_if.clone();
    let v6 = SERVER_IP6.to_string();
    for (listen, served, other) in [
        (GW_IP, format!("http://{GW_IP}:{BYPASS}"), url6(BYPASS, "")),
        (
            v6.as_str(),
            url6(BYPASS, ""),
            format!("http://{GW_IP}:{BYPASS}"),
        ),
    ] {
        let gw = start_xgate(&mut topo, &["--listen-addr", listen]);
        let before = port(&status(&ifname), BYPASS).clone();
        assert_eq!(curl(&topo, &format!("{served}/health"), &[]), b"ok");
        for port_url in [
            other.clone(),
            other.replace(&BYPASS.to_string(), &KERNEL.to_string()),
        ] {
            assert!(
                refused(&topo, &format!("{port_url}/health")),
                "listen_addr {listen}: {port_url} was not refused"
            );
        }
        settle();
        let after = port(&status(&ifname), BYPASS).clone();
        assert_eq!(
            num(&after, "syns_steered") - num(&before, "syns_steered"),
            1,
            "listen_addr {listen}: only the served family's SYN was steered: {after}"
        );
        assert!(
            num(&after, "no_listener") > num(&before, "no_listener"),
            "listen_addr {listen}: {after}"
        );
        assert_eq!(num(&after, "kernel_connections_total"), 0, "{after}");

        // Another process listening on the port in the other family keeps its clients: its
        // listener is not the gateway's (rule 3a compares family and bound address).
        let other_host = if listen == GW_IP {
            v6.clone()
        } else {
            GW_IP.to_string()
        };
        let mut server = topo
            .in_server("python3")
            .args([
                "-m",
                "http.server",
                "--bind",
                &other_host,
                &BYPASS.to_string(),
            ])
            .current_dir(std::env::temp_dir())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("python's http.server");
        let url = format!("{other}/");
        let deadline = Instant::now() + Duration::from_secs(10);
        let page = loop {
            let o = curl_once(&topo, &url);
            if o.status.success() {
                break String::from_utf8_lossy(&o.stdout).into_owned();
            }
            assert!(
                Instant::now() < deadline,
                "python's server never answered {url}"
            );
            std::thread::sleep(Duration::from_millis(100));
        };
        let _ = server.kill();
        let _ = server.wait();
        assert!(
            page.contains("Directory listing"),
            "{url} answered by: {page:.200}"
        );
        settle();
        let last = port(&status(&ifname), BYPASS).clone();
        assert_eq!(
            num(&last, "syns_steered"),
            num(&after, "syns_steered"),
            "listen_addr {listen}: the other process's clients were steered: {last}"
        );
        terminate(&mut topo, gw);
    }
}

/// Per port (`[[ports]] listen_addr`): the bypass port bound to the gateway's IPv4 address
/// serves IPv4 alone, the kernel port with the default `::` both families, side by side.
#[test]
fn each_port_serves_the_addresses_it_is_configured_with() {
    let Some(mut topo) = ipv6_topology("each_port_serves_the_addresses_it_is_configured_with")
    else {
        return;
    };
    let ifname = topo.server_if.clone();
    let dir = common::TempDir::new(&format!("{}-ports", topo.name));
    let file = dir.0.join("xgate.toml");
    std::fs::write(
        &file,
        format!(
            "interface = \"{ifname}\"\nshutdown_grace_secs = 1\n\
             [[ports]]\nport = {BYPASS}\nbypass = true\nlisten_addr = \"{GW_IP}\"\n\
             [[ports]]\nport = {KERNEL}\n"
        ),
    )
    .expect("config file");
    let gw = common::start_xgate(&mut topo, &file, &[]);
    assert_eq!(
        curl(&topo, &format!("http://{GW_IP}:{BYPASS}/health"), &[]),
        b"ok"
    );
    assert!(
        refused(&topo, &url6(BYPASS, "/health")),
        "IPv6 to the IPv4-only port"
    );
    assert_eq!(curl(&topo, &url6(KERNEL, "/health"), &[]), b"ok");
    assert_eq!(
        curl(&topo, &format!("http://{GW_IP}:{KERNEL}/health"), &[]),
        b"ok"
    );
    settle();
    let s = status(&ifname);
    assert_eq!(num(port(&s, BYPASS), "syns_steered"), 1, "{s}");
    assert_eq!(num(port(&s, KERNEL), "kernel_connections_ipv6"), 1, "{s}");
    terminate(&mut topo, gw);
}

/// Rule 3b of docs/steering.md: on a host that routes, a SYN to a port the gateway serves
/// with a wildcard listener but to an address that is not the host's is routed by the
/// kernel (here to an unreachable route: the client is told so), never answered by the
/// bypass, and counted as `not_local`.
#[test]
fn segments_to_addresses_that_are_not_the_hosts_are_routed_not_served() {
    let Some(mut topo) =
        ipv6_topology("segments_to_addresses_that_are_not_the_hosts_are_routed_not_served")
    else {
        return;
    };
    let ifname = topo.server_if.clone();
    // The gateway's namespace forwards, and routes two prefixes nowhere; the client sends
    // them to the gateway.
    for cmd in [
        vec![
            "ip",
            "netns",
            "exec",
            &topo.server_ns,
            "sysctl",
            "-qw",
            "net.ipv4.ip_forward=1",
        ],
        vec![
            "ip",
            "netns",
            "exec",
            &topo.server_ns,
            "sysctl",
            "-qw",
            "net.ipv6.conf.all.forwarding=1",
        ],
        vec![
            "ip",
            "-n",
            &topo.server_ns,
            "route",
            "add",
            "unreachable",
            "192.0.2.0/24",
        ],
        vec![
            "ip",
            "-n",
            &topo.server_ns,
            "-6",
            "route",
            "add",
            "unreachable",
            "2001:db8:77::/48",
        ],
        vec![
            "ip",
            "-n",
            &topo.client_ns,
            "route",
            "add",
            "192.0.2.0/24",
            "via",
            GW_IP,
        ],
    ] {
        common::run(&cmd);
    }
    let via6 = SERVER_IP6.to_string();
    common::run(&[
        "ip",
        "-n",
        &topo.client_ns,
        "-6",
        "route",
        "add",
        "2001:db8:77::/48",
        "via",
        &via6,
    ]);
    let gw = start_xgate(&mut topo, &[]);
    let before = port(&status(&ifname), BYPASS).clone();
    for url in [
        format!("http://192.0.2.1:{BYPASS}/health"),
        format!("http://[2001:db8:77::1]:{BYPASS}/health"),
    ] {
        let o = curl_once(&topo, &url);
        assert!(
            !o.status.success(),
            "{url} was answered: {}",
            String::from_utf8_lossy(&o.stdout)
        );
    }
    // The gateway's own addresses are still served.
    assert_eq!(curl(&topo, &url6(BYPASS, "/health"), &[]), b"ok");
    settle();
    let after = port(&status(&ifname), BYPASS).clone();
    assert!(
        num(&after, "not_local") >= num(&before, "not_local") + 2,
        "both SYNs counted as not local: {after}"
    );
    assert_eq!(
        num(&after, "syns_steered") - num(&before, "syns_steered"),
        1,
        "{after}"
    );
    terminate(&mut topo, gw);
}
