use std::net::Ipv4Addr;
use std::path::PathBuf;

use super::*;
use crate::afxdp::{BindMode, Wakeup};
use crate::bpf::XdpMode;
use crate::gateway::PortConfig;
use crate::tcp::CongestionAlgorithm;

fn parse(text: &str) -> ConfigFile {
    ConfigFile::parse(text).unwrap()
}

fn problem(file: &str, over: &Overrides) -> String {
    build(&parse(file), over).unwrap_err().to_string()
}

const FULL: &str = r#"
interface = "eth1"
listen_addr = "10.0.0.1"
backlog = 512
shutdown_grace_secs = 9

[[ports]]
port = 80

[[ports]]
port = 8080
bypass = true

[bypass]
queues = 2
cores = [1, 3]
xdp_mode = "generic"
bind_mode = "copy"
need_wakeup = "off"
frame_count = 8192
ring_size = 1024
batch_size = 32
idle_spin_us = 50

[kernel_path]
core = 0
max_connections = 100
linger_ms = 500

[tcp]
max_connections = 1000
mss = 1400
idle_timeout_secs = 30
delayed_ack_ms = 20
congestion = "newreno"
hystart = false
ecn = false
syn_cache = 512
syn_cache_rate = 100
syn_ack_retries = 5
tx_buffer_max = 1048576
rx_buffer_max = 2097152
buffer_budget = 33554432

[http]
max_header_bytes = 8192
header_timeout_secs = 3
idle_timeout_secs = 15

[app]
builtin_routes = false

[[app.routes]]
path = "/hello"
headers = { "Content-Type" = "text/plain" }
body = "hi\n"
"#;

#[test]
fn a_full_file_fills_every_setting() {
    let c = build(&parse(FULL), &Overrides::default()).unwrap();
    let g = &c.gateway;
    assert_eq!(g.ifname, "eth1");
    assert_eq!(g.xsk.ifname, "eth1");
    assert_eq!(g.listen_addr, Ipv4Addr::new(10, 0, 0, 1));
    assert_eq!(g.backlog, 512);
    assert_eq!(
        g.ports,
        vec![
            PortConfig {
                port: 80,
                bypass: false
            },
            PortConfig {
                port: 8080,
                bypass: true
            }
        ]
    );
    assert_eq!((g.queues, g.cores.clone()), (Some(2), vec![1, 3]));
    assert_eq!(g.xdp_mode, XdpMode::Generic);
    assert_eq!(g.xsk.bind_mode, BindMode::Copy);
    assert_eq!(g.xsk.wakeup, Wakeup::Off);
    assert_eq!((g.xsk.frame_count, g.xsk.ring_size), (8192, 1024));
    assert_eq!(g.poller.batch_size, 32);
    assert_eq!(g.poller.idle_spin, Duration::from_micros(50));
    assert_eq!(g.engine.tcp.max_connections, 1000);
    assert_eq!(g.engine.tcp.mss, 1400);
    assert_eq!(g.engine.tcp.idle_timeout, Duration::from_secs(30));
    assert_eq!(g.engine.tcp.delayed_ack, Duration::from_millis(20));
    assert_eq!(g.engine.tcp.congestion, CongestionAlgorithm::NewReno);
    // The kernel path's listeners get the same algorithm, by its Linux name.
    assert_eq!(c.kernel.congestion, Some("reno"));
    assert!(!g.engine.tcp.hystart);
    assert!(!g.engine.tcp.ecn);
    assert_eq!(
        (
            g.engine.tcp.syn_cache,
            g.engine.tcp.syn_cache_rate,
            g.engine.tcp.syn_ack_retries
        ),
        (512, 100, 5)
    );
    assert_eq!(
        (
            g.engine.tcp.tx_buffer_max,
            g.engine.tcp.rx_buffer_max,
            g.engine.tcp.buffer_budget
        ),
        (1 << 20, 2 << 20, 32 << 20)
    );
    assert_eq!(g.engine.http.max_header_bytes, 8192);
    assert_eq!(g.engine.http.header_timeout, Duration::from_secs(3));
    // Both paths answer within the same HTTP limits.
    assert_eq!(c.kernel.http, g.engine.http);
    assert_eq!(c.kernel.max_connections, 100);
    assert_eq!(c.kernel.linger, Duration::from_millis(500));
    assert_eq!(c.kernel_drive, KernelDrive::Thread { core: Some(0) });
    assert!(!g.app.builtin_routes);
    assert_eq!(g.app.routes.len(), 1);
    assert_eq!(g.app.routes[0].method, "GET");
    assert_eq!(g.app.routes[0].body, b"hi\n");
    assert_eq!(
        g.app.routes[0].headers,
        vec![("Content-Type".into(), "text/plain".into())]
    );
    assert_eq!(c.shutdown_grace, Duration::from_secs(9));
}

#[test]
fn an_empty_file_with_flags_gives_the_defaults() {
    let over = Overrides {
        interface: Some("eth0".into()),
        ports: vec![80],
        ..Overrides::default()
    };
    let c = build(&ConfigFile::default(), &over).unwrap();
    let d = BypassConfig::new("eth0", []);
    assert_eq!(c.gateway.backlog, d.backlog);
    assert_eq!(c.gateway.engine.tcp, d.engine.tcp);
    assert!(c.gateway.engine.tcp.hystart, "HyStart++ is on by default");
    assert!(
        c.gateway.engine.tcp.ecn,
        "ECN accepted by default, as Linux's tcp_ecn = 2"
    );
    assert_eq!(c.gateway.engine.http, d.engine.http);
    assert_eq!(c.gateway.xsk.ring_size, d.xsk.ring_size);
    assert_eq!(
        c.kernel.max_connections,
        KernelConfig::default().max_connections
    );
    assert_eq!(
        c.kernel.congestion,
        Some("cubic"),
        "as the bypass's default"
    );
    assert_eq!(c.shutdown_grace, Duration::from_secs(5));
    assert_eq!(
        c.gateway.ports,
        vec![PortConfig {
            port: 80,
            bypass: false
        }]
    );
    assert_eq!(
        c.gateway.listen_addr,
        std::net::Ipv6Addr::UNSPECIFIED,
        "both families by default"
    );
}

/// A port may bind its own address; the others take the top-level one. A bad one is refused
/// naming the port.
#[test]
fn a_port_may_have_its_own_listen_addr() {
    let text = "interface = \"eth1\"\nlisten_addr = \"10.0.0.1\"\n\
                [[ports]]\nport = 80\n\
                [[ports]]\nport = 443\nlisten_addr = \"fd00::1\"\n";
    let g = build(&parse(text), &Overrides::default()).unwrap().gateway;
    assert_eq!(g.listen_addr_of(80), Ipv4Addr::new(10, 0, 0, 1));
    assert_eq!(
        g.listen_addr_of(443),
        "fd00::1".parse::<std::net::Ipv6Addr>().unwrap()
    );
    let bad = text.replace("fd00::1", "fe80::1");
    let e = problem(&bad, &Overrides::default());
    assert!(e.starts_with("[[ports]] 443: listen_addr: "), "{e}");
}

/// `listen_addr` takes either family, from the file or the flag, and refuses what is not an
/// address, naming the key.
#[test]
fn listen_addr_takes_either_family() {
    let base = "interface = \"eth1\"\n[[ports]]\nport = 80\n";
    let read = |line: &str| {
        build(&parse(&format!("{line}\n{base}")), &Overrides::default())
            .unwrap()
            .gateway
            .listen_addr
    };
    assert_eq!(read("listen_addr = \"0.0.0.0\""), Ipv4Addr::UNSPECIFIED);
    assert_eq!(
        read("listen_addr = \"fd00::1\""),
        "fd00::1".parse::<std::net::Ipv6Addr>().unwrap()
    );
    let over = Overrides {
        listen_addr: Some("::1".parse().unwrap()),
        ..Overrides::default()
    };
    let file = parse(&format!("listen_addr = \"10.0.0.1\"\n{base}"));
    assert_eq!(
        build(&file, &over).unwrap().gateway.listen_addr,
        std::net::Ipv6Addr::LOCALHOST,
        "the flag wins"
    );
    let e = ConfigFile::parse(&format!("listen_addr = \"[::]\"\n{base}")).unwrap_err();
    assert!(e.to_string().contains("listen_addr"), "{e}");
    for (bad, says) in [
        ("::ffff:10.0.0.1", "write 10.0.0.1"),
        ("fe80::1", "link-local"),
        ("ff02::1", "multicast"),
        ("224.0.0.1", "multicast"),
    ] {
        let text = format!("listen_addr = \"{bad}\"\n{base}");
        let e = problem(&text, &Overrides::default());
        assert!(
            e.starts_with("listen_addr: ") && e.contains(says),
            "{bad}: {e}"
        );
    }
}

#[test]
fn admin_listen_is_read_overridden_and_checked() {
    let base = "interface = \"eth1\"\n[[ports]]\nport = 80\n";
    let c = build(&parse(base), &Overrides::default()).unwrap();
    assert_eq!(c.admin_listen, None, "no endpoint unless asked");
    let file = format!("{base}[admin]\nlisten = \"127.0.0.1:9180\"\n");
    let c = build(&parse(&file), &Overrides::default()).unwrap();
    assert_eq!(c.admin_listen, Some("127.0.0.1:9180".parse().unwrap()));
    let over = Overrides {
        admin_listen: Some("10.0.0.1:9999".parse().unwrap()),
        ..Overrides::default()
    };
    assert_eq!(
        build(&parse(&file), &over).unwrap().admin_listen,
        Some("10.0.0.1:9999".parse().unwrap())
    );
    let clash = format!("{base}[admin]\nlisten = \"0.0.0.0:80\"\n");
    assert!(problem(&clash, &Overrides::default())
        .starts_with("admin.listen: port 80 is a served port"));
    let zero = format!("{base}[admin]\nlisten = \"0.0.0.0:0\"\n");
    assert!(problem(&zero, &Overrides::default()).starts_with("admin.listen: port 0"));
    assert!(ConfigFile::parse(&format!("{base}[admin]\nlisten = \"nowhere\"\n")).is_err());
}

#[test]
fn flags_override_the_file() {
    let over = Overrides {
        interface: Some("eth9".into()),
        cores: vec![0],
        backlog: Some(64),
        xdp_mode: Some(XdpMode::Native),
        kernel_core: Some(1),
        ..Overrides::default()
    };
    let c = build(&parse(FULL), &over).unwrap();
    assert_eq!(c.gateway.ifname, "eth9");
    assert_eq!(c.gateway.xsk.ifname, "eth9");
    assert_eq!(c.gateway.cores, vec![0]);
    assert_eq!(c.gateway.backlog, 64);
    assert_eq!(c.gateway.xdp_mode, XdpMode::Native);
    assert_eq!(c.kernel_drive, KernelDrive::Thread { core: Some(1) });
    // --port replaces the file's ports; --bypass alone picks among the file's.
    let over = Overrides {
        ports: vec![9000],
        ..Overrides::default()
    };
    let c = build(&parse(FULL), &over).unwrap();
    assert_eq!(
        c.gateway.ports,
        vec![PortConfig {
            port: 9000,
            bypass: false
        }]
    );
    let over = Overrides {
        bypass: vec![80],
        ..Overrides::default()
    };
    let c = build(&parse(FULL), &over).unwrap();
    let bypassed: Vec<u16> = c
        .gateway
        .ports
        .iter()
        .filter(|p| p.bypass)
        .map(|p| p.port)
        .collect();
    assert_eq!(bypassed, vec![80]);
}

#[test]
fn errors_name_the_key_and_the_problem() {
    let none = Overrides::default();
    let cases: &[(&str, &str)] = &[
        ("[[ports]]\nport = 80\n", "interface: missing"),
        ("interface = \"e\"\n", "ports: no port to serve"),
        (
            "interface = \"a/b\"\n[[ports]]\nport = 1\n",
            "interface: \"a/b\" is not a valid",
        ),
        (
            "interface = \"e\"\n[[ports]]\nport = 0\n",
            "ports[0].port: 0 is not a port",
        ),
        (
            "interface = \"e\"\n[[ports]]\nport = 80\n[[ports]]\nport = 80\n",
            "ports[1].port: 80 is given twice",
        ),
        (
            "interface = \"e\"\n[[ports]]\nport = 80\n[tcp]\nmss = 100\n",
            "tcp.mss: 100 is out of range (536..=1954) with frames of 2048 bytes",
        ),
        (
            "interface = \"e\"\n[[ports]]\nport = 80\n[bypass]\nring_size = 1000\n",
            "bypass.ring_size: 1000 must be a power of two",
        ),
        (
            "interface = \"e\"\n[[ports]]\nport = 80\n[bypass]\nframe_size = 3000\n",
            "bypass.frame_size: 3000 must be 2048 or 4096",
        ),
        (
            "interface = \"e\"\n[[ports]]\nport = 80\n[tcp]\ndelayed_ack_ms = 500\n",
            "tcp.delayed_ack_ms: 500 is out of range (1..=499)",
        ),
        (
            "interface = \"e\"\n[[ports]]\nport = 80\n[tcp]\nsyn_ack_retries = 9\n",
            "tcp.syn_ack_retries: 9 is out of range (0..=8)",
        ),
        (
            "interface = \"e\"\n[[ports]]\nport = 80\n[tcp]\ntx_buffer = 65536\ntx_buffer_max = 32768\n",
            "tcp.tx_buffer_max: 32768 is below tcp.tx_buffer (65536); set it equal to turn send-buffer growth off",
        ),
        (
            "interface = \"e\"\n[[ports]]\nport = 80\n[tcp]\nrx_buffer_max = 8192\n",
            "tcp.rx_buffer_max: 8192 is below tcp.rx_buffer (262144); set it equal to turn receive-buffer growth off",
        ),
        (
            "interface = \"e\"\n[[ports]]\nport = 80\n[http]\nmax_headers = 500\n",
            "http.max_headers: 500 is out of range",
        ),
        (
            "interface = \"e\"\n[[ports]]\nport = 80\n[[app.routes]]\npath = \"nope\"\n",
            "app.routes: route 0: path \"nope\" must start with '/'",
        ),
        (
            "interface = \"e\"\n[[ports]]\nport = 80\n[kernel_path]\nrecv_buffers = 3\n",
            "kernel_path.recv_buffers: 3 must be a power of two",
        ),
    ];
    for (file, want) in cases {
        let got = problem(file, &none);
        assert!(
            got.starts_with(want),
            "{file:?}: {got:?} does not start with {want:?}"
        );
    }
    let over = Overrides {
        bypass: vec![81],
        ..Overrides::default()
    };
    assert!(problem("interface = \"e\"\n[[ports]]\nport = 80\n", &over)
        .starts_with("--bypass: 81 is not one of the served ports"));
}

#[test]
fn unknown_keys_and_wrong_types_are_refused_by_the_parser() {
    let e = ConfigFile::parse("interface = \"e\"\n[tcp]\nmsss = 1400\n").unwrap_err();
    assert!(e.contains("msss") && e.contains("unknown field"), "{e}");
    let e = ConfigFile::parse("backlog = \"big\"\n").unwrap_err();
    assert!(e.contains("backlog"), "{e}");
    let e = ConfigFile::parse("[bypass]\nxdp_mode = \"fast\"\n").unwrap_err();
    assert!(e.contains("fast") && e.contains("native"), "{e}");
    let e = ConfigFile::parse("[tcp]\ncongestion = \"reno\"\n").unwrap_err();
    assert!(e.contains("reno") && e.contains("cubic"), "{e}");
    let e = ConfigFile::parse("[tcp]\nhystart = \"yes\"\n").unwrap_err();
    assert!(e.contains("hystart") || e.contains("bool"), "{e}");
    let e = ConfigFile::parse("[[ports]]\nport = 70000\n").unwrap_err();
    assert!(e.contains("port"), "{e}");
}

/// A fresh directory of `files` under the system's temporary directory.
fn www(name: &str, files: &[(&str, &str)]) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("xgate-config-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    for (rel, body) in files {
        let path = dir.join(rel);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, body).unwrap();
    }
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[test]
fn static_dir_is_read_into_routes_under_the_prefix() {
    let dir = www(
        "static",
        &[("index.html", "<p>hi</p>"), ("css/a.css", "a{}")],
    );
    let file = format!(
        "interface = \"e\"\n[[ports]]\nport = 80\n[app]\nstatic_dir = '{}'\nstatic_prefix = \"/s\"\n",
        dir.display()
    );
    let c = build(&parse(&file), &Overrides::default()).unwrap();
    let files = &c.gateway.app.files;
    assert_eq!((files.files(), files.bytes()), (2, 12));
    let paths: Vec<&[u8]> = files.paths().collect();
    assert_eq!(
        paths,
        [&b"/s"[..], b"/s/", b"/s/css/a.css", b"/s/index.html"]
    );
    // Without a directory there are no files, whatever the bounds say.
    let c = build(
        &parse("interface = \"e\"\n[[ports]]\nport = 80\n[app]\nstatic_max_files = 0\n"),
        &Overrides::default(),
    )
    .unwrap();
    assert_eq!(c.gateway.app.files.files(), 0);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn static_dir_errors_name_the_key_and_the_file() {
    let dir = www("static-errors", &[("a.txt", "12345"), ("b|c", "x")]);
    let base = |extra: &str| {
        format!(
            "interface = \"e\"\n[[ports]]\nport = 80\n[app]\nstatic_dir = '{}'\n{extra}",
            dir.display()
        )
    };
    let none = Overrides::default();
    let bad_name = problem(&base(""), &none);
    assert!(
        bad_name.starts_with(&format!(
            "app.static_dir: {}: the name has one of",
            dir.join("b|c").display()
        )),
        "{bad_name}"
    );
    std::fs::remove_file(dir.join("b|c")).unwrap();
    let cases = [
        (
            "static_max_bytes = 4\n",
            format!(
                "app.static_max_bytes: {}: the files add up to more than 4 bytes",
                dir.join("a.txt").display()
            ),
        ),
        (
            "static_max_files = 0\n",
            format!(
                "app.static_max_files: {}: more than 0 files",
                dir.join("a.txt").display()
            ),
        ),
        (
            "static_prefix = \"x\"\n",
            "app.static_prefix: \"x\" must start with '/'".to_string(),
        ),
        (
            "static_max_files = 2000000\n",
            "app.static_max_files: 2000000 is out of range".to_string(),
        ),
    ];
    for (extra, want) in cases {
        let got = problem(&base(extra), &none);
        assert!(
            got.starts_with(&want),
            "{got:?} does not start with {want:?}"
        );
    }
    assert!(build(&parse(&base("static_max_bytes = 5\n")), &none).is_ok());
    let missing = dir.join("missing");
    let file = format!(
        "interface = \"e\"\n[[ports]]\nport = 80\n[app]\nstatic_dir = '{}'\n",
        missing.display()
    );
    assert!(problem(&file, &none).starts_with(&format!("app.static_dir: {}: ", missing.display())));
    let relative = "interface = \"e\"\n[[ports]]\nport = 80\n[app]\nstatic_dir = \"www\"\n";
    assert_eq!(
        problem(relative, &none),
        "app.static_dir: \"www\" must be an absolute path"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// A certificate for `names` and its key, written as PEM under `dir` as `stem`.crt/.key.
fn write_cert(dir: &std::path::Path, stem: &str, names: &[&str]) -> (PathBuf, PathBuf) {
    let key = rcgen::KeyPair::generate().unwrap();
    let names: Vec<String> = names.iter().map(|n| n.to_string()).collect();
    let cert = rcgen::CertificateParams::new(names)
        .unwrap()
        .self_signed(&key)
        .unwrap();
    let (crt, keyfile) = (
        dir.join(format!("{stem}.crt")),
        dir.join(format!("{stem}.key")),
    );
    std::fs::write(&crt, cert.pem()).unwrap();
    std::fs::write(&keyfile, key.serialize_pem()).unwrap();
    (crt, keyfile)
}

#[test]
fn the_shipped_example_is_valid() {
    // Its certificate files made where a test may write (the rest of the file as shipped).
    let dir = std::env::temp_dir().join(format!("xgate-example-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    write_cert(&dir, "example.com", &["example.com", "*.example.com"]);
    let text = include_str!("../../../docs/xgate.example.toml")
        .replace("/etc/xgate/", &format!("{}/", dir.display()));
    let c = build(&parse(&text), &Overrides::default()).unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    assert_eq!(c.tls.ports, vec![443], "a TLS port");
    assert_eq!(c.tls.certificates.len(), 1);
    assert!(!c.gateway.ports.is_empty());
    assert_eq!(
        c.access_log.map(|a| a.path),
        Some(PathBuf::from("/var/log/xgate/access.log"))
    );
    // A pool of two servers, and one route to it beside one the gateway answers.
    use crate::proxy::route::{RouteTarget, UpstreamId};
    assert_eq!(c.proxy.upstreams.len(), 1);
    assert_eq!(c.proxy.upstreams[0].pool.servers.len(), 2);
    let routes = &c.proxy.routes;
    assert_eq!(routes.len(), 2);
    let target = |path: &[u8]| routes.find(None, path).map(|id| routes.target(id));
    assert_eq!(
        target(b"/api/users"),
        Some(&RouteTarget::Upstream(UpstreamId(0)))
    );
    assert_eq!(target(b"/api/docs/index.html"), Some(&RouteTarget::Static));
    assert_eq!(target(b"/hello"), None);
}

#[test]
fn access_log_is_read_overridden_and_checked() {
    use crate::access::LogFormat;
    let base = "interface = \"eth0\"\n[[ports]]\nport = 80\n";
    let c = build(&parse(base), &Overrides::default()).unwrap();
    assert_eq!(c.access_log, None, "no access log unless asked");
    let file = format!("{base}[access_log]\npath = \"/tmp/a.log\"\nformat = \"json\"\n");
    let a = build(&parse(&file), &Overrides::default())
        .unwrap()
        .access_log
        .unwrap();
    assert_eq!(
        (a.path.to_str().unwrap(), a.format, a.buffer_records),
        ("/tmp/a.log", LogFormat::Json, 16_384)
    );
    let over = Overrides {
        access_log: Some(PathBuf::from("/tmp/b.log")),
        ..Overrides::default()
    };
    let a = build(&parse(&file), &over).unwrap().access_log.unwrap();
    assert_eq!(
        (a.path.to_str().unwrap(), a.format),
        ("/tmp/b.log", LogFormat::Json)
    );
    let a = build(&parse(base), &over).unwrap().access_log.unwrap();
    assert_eq!(a.format, LogFormat::Text);
    let pathless = format!("{base}[access_log]\nformat = \"json\"\n");
    assert!(problem(&pathless, &Overrides::default()).starts_with("access_log.path: missing"));
    let small = format!("{base}[access_log]\npath = \"/tmp/a.log\"\nbuffer_records = 4\n");
    assert!(problem(&small, &Overrides::default()).starts_with("access_log.buffer_records"));
    let dir = format!("{base}[access_log]\npath = \"/tmp\"\n");
    assert!(problem(&dir, &Overrides::default())
        .starts_with("access_log.path: /tmp is not a file path"));
    assert!(ConfigFile::parse(&format!("{base}[access_log]\nformat = \"xml\"\n")).is_err());
}

const PROXY: &str = r#"
interface = "eth1"
[[ports]]
port = 80

[[upstream]]
name = "api"
servers = [{ address = "10.0.0.2:8080", weight = 3 }, { address = "[2001:db8::2]:8080" }]
policy = "hash"
hash_key = "header:X-User"
keepalive = 8
connect_timeout_ms = 250
send_timeout_secs = 5
read_timeout_secs = 30
idle_timeout_secs = 20
max_fails = 3
fail_timeout_secs = 15

[upstream.health_check]
path = "/health?deep=1"
interval_ms = 2000
expect_status = 204
timeout_ms = 500

[[upstream]]
name = "web"
servers = [{ address = "10.0.0.3:80" }]

[[route]]
host = "API.example.com"
path_prefix = "/v1"
upstream = "api"
strip_prefix = "/v1"
set_headers = { "X-Zone" = "b", "X-App" = "a", "X-Mid" = "m" }
remove_headers = ["Cookie"]
response_set_headers = { "X-Frame-Options" = "DENY", "Cache-Control" = "no-store" }
response_remove_headers = ["Server"]
upstream_host = "api.internal"
x_forwarded = false
forwarded = true
via = "edge1"

[[route]]
path_prefix = "/static"
static = true

[[route]]
path_prefix = "/down"
respond = { status = 503, body = "later\n" }

[[route]]
upstream = "web"
"#;

#[test]
fn upstreams_and_routes_fill_the_proxy_config() {
    use crate::proxy::balance::{Policy, ServerSpec};
    use crate::proxy::exchange::Timeouts;
    use crate::proxy::forward::{ForwardConfig, ForwardRules};
    use crate::proxy::route::{RouteTarget, UpstreamId};
    let c = build(&parse(PROXY), &Overrides::default()).unwrap();
    let p = &c.proxy;
    assert_eq!(p.upstreams.len(), 2);
    let api = &p.upstreams[0];
    assert_eq!(api.name, "api");
    assert_eq!(
        api.pool.servers,
        vec![
            ServerSpec {
                addr: "10.0.0.2:8080".parse().unwrap(),
                weight: 3
            },
            ServerSpec {
                addr: "[2001:db8::2]:8080".parse().unwrap(),
                weight: 1
            }
        ]
    );
    assert_eq!(api.pool.policy, Policy::ConsistentHash);
    assert_eq!(
        (api.pool.max_fails, api.pool.fail_timeout),
        (3, Duration::from_secs(15))
    );
    assert_eq!(api.hash_key, Some(HashKeySource::Header("X-User".into())));
    assert_eq!(api.keepalive, 8);
    assert_eq!(
        api.timeouts,
        Timeouts {
            connect: Duration::from_millis(250),
            send: Duration::from_secs(5),
            read: Duration::from_secs(30),
            idle: Duration::from_secs(20),
            ..Timeouts::default()
        }
    );
    assert_eq!(
        api.health_check,
        Some(HealthCheck {
            path: "/health?deep=1".into(),
            interval: Duration::from_millis(2000),
            expect_status: 204,
            timeout: Duration::from_millis(500),
        })
    );
    assert!(api
        .pool(crate::proxy::balance::HashKey([7; 16]))
        .is_ok_and(|pool| pool.servers().len() == 2));

    let r = &p.routes;
    assert_eq!(r.len(), 4);
    let v1 = r.find(Some(b"api.EXAMPLE.com:80"), b"/v1/users").unwrap();
    assert_eq!(r.target(v1), &RouteTarget::Upstream(UpstreamId(0)));
    assert_eq!(p.upstream(UpstreamId(0)).name, "api");
    // The rules are exactly those of the keys, set_headers in the file's order.
    let want = ForwardConfig {
        via: "edge1".into(),
        x_forwarded: false,
        forwarded: true,
        strip_prefix: Some("/v1".into()),
        set_headers: vec![
            ("X-Zone".into(), "b".into()),
            ("X-App".into(), "a".into()),
            ("X-Mid".into(), "m".into()),
        ],
        remove_headers: vec!["Cookie".into()],
        response_set_headers: vec![
            ("X-Frame-Options".into(), "DENY".into()),
            ("Cache-Control".into(), "no-store".into()),
        ],
        response_remove_headers: vec!["Server".into()],
        upstream_host: Some("api.internal".into()),
    };
    assert_eq!(
        r.forward_rules(v1),
        Some(&ForwardRules::new(&want).unwrap())
    );
    // Another host takes the catch-all route to "web", with the default rules.
    let other = r.find(Some(b"www.example.com"), b"/v1/users").unwrap();
    assert_eq!(r.target(other), &RouteTarget::Upstream(UpstreamId(1)));
    assert_eq!(
        r.forward_rules(other),
        Some(&ForwardRules::new(&ForwardConfig::default()).unwrap())
    );
    let s = r.find(None, b"/static/a.css").unwrap();
    assert_eq!(r.target(s), &RouteTarget::Static);
    let down = r.find(None, b"/down").unwrap();
    assert_eq!(
        r.target(down),
        &RouteTarget::Respond {
            status: 503,
            body: b"later\n"[..].into()
        }
    );
}

#[test]
fn an_upstream_takes_the_defaults_of_the_keys_it_leaves_out() {
    use crate::proxy::balance::Policy;
    use crate::proxy::exchange::Timeouts;
    let file = "interface = \"e\"\n[[ports]]\nport = 80\n[[upstream]]\nname = \"u\"\nservers = [{ address = \"10.0.0.2:80\" }]\n";
    let c = build(&parse(file), &Overrides::default()).unwrap();
    let u = &c.proxy.upstreams[0];
    assert_eq!(u.pool.policy, Policy::RoundRobin);
    assert_eq!(u.pool.servers[0].weight, 1);
    assert_eq!(u.hash_key, None);
    assert_eq!(u.keepalive, 32);
    assert_eq!(u.timeouts, Timeouts::default());
    assert_eq!(
        (u.pool.max_fails, u.pool.fail_timeout),
        (1, Duration::from_secs(10))
    );
    assert_eq!(u.health_check, None);
    assert!(
        c.proxy.routes.is_empty(),
        "no [[route]]: nothing is proxied"
    );
    let hash = format!("{file}policy = \"hash\"\n[upstream.health_check]\npath = \"/h\"\n");
    let u = &build(&parse(&hash), &Overrides::default())
        .unwrap()
        .proxy
        .upstreams[0];
    assert_eq!(u.hash_key, Some(HashKeySource::ClientAddress));
    assert_eq!(
        u.health_check,
        Some(HealthCheck {
            path: "/h".into(),
            interval: Duration::from_secs(5),
            expect_status: 200,
            timeout: Duration::from_secs(2),
        })
    );
    // A file without the proxy's sections has an empty proxy configuration.
    let c = build(
        &parse("interface = \"e\"\n[[ports]]\nport = 80\n"),
        &Overrides::default(),
    )
    .unwrap();
    assert_eq!(c.proxy, ProxyConfig::default());
}

#[test]
fn proxy_errors_name_the_key_and_the_problem() {
    let none = Overrides::default();
    let base = "interface = \"e\"\n[[ports]]\nport = 80\n";
    let ok_up = "[[upstream]]\nname = \"u\"\nservers = [{ address = \"10.0.0.2:80\" }]\n";
    let cases: &[(String, &str)] = &[
        (
            format!("{ok_up}[[upstream]]\nname = \"w\"\nservers = [{{ address = \"backend:80\" }}]\n"),
            "upstream[1].servers[0].address: \"backend:80\" is not an IP address and port",
        ),
        (
            "[[upstream]]\nname = \"u\"\nservers = [{ address = \"10.0.0.2\" }]\n".into(),
            "upstream[0].servers[0].address: \"10.0.0.2\" is not an IP address and port",
        ),
        (
            "[[upstream]]\nname = \"u\"\nservers = [{ address = \"10.0.0.2:0\" }]\n".into(),
            "upstream[0].servers[0].address: \"10.0.0.2:0\" is not an address a connection can go to",
        ),
        (
            "[[upstream]]\nname = \"u\"\nservers = [{ address = \"0.0.0.0:80\" }]\n".into(),
            "upstream[0].servers[0].address: \"0.0.0.0:80\" is not an address",
        ),
        (
            format!("{ok_up}{ok_up}"),
            "upstream[1].name: \"u\" is already the name of upstream[0]",
        ),
        (
            "[[upstream]]\nname = \"a b\"\nservers = [{ address = \"10.0.0.2:80\" }]\n".into(),
            "upstream[0].name: \"a b\" is not a token",
        ),
        (
            "[[upstream]]\nname = \"u\"\n".into(),
            "upstream[0].servers: an upstream pool needs at least one server",
        ),
        (
            "[[upstream]]\nname = \"u\"\nservers = [{ address = \"10.0.0.2:80\" }, { address = \"10.0.0.3:80\", weight = 0 }]\n".into(),
            "upstream[0].servers[1].weight: upstream server 10.0.0.3:80: weight 0 is outside 1..=1000",
        ),
        (
            "[[upstream]]\nname = \"u\"\nservers = [{ address = \"10.0.0.2:80\" }, { address = \"10.0.0.2:80\" }]\n".into(),
            "upstream[0].servers[1].address: upstream server 10.0.0.2:80 is listed twice",
        ),
        (
            format!("{ok_up}max_fails = 101\n"),
            "upstream[0].max_fails: max_fails 101 is above 100",
        ),
        (
            format!("{ok_up}fail_timeout_secs = 0\n"),
            "upstream[0].fail_timeout_secs: max_fails 1 with a zero fail_timeout",
        ),
        (
            format!("{ok_up}hash_key = \"client_address\"\n"),
            "upstream[0].hash_key: only with policy = \"hash\"",
        ),
        (
            format!("{ok_up}policy = \"hash\"\nhash_key = \"cookie:id\"\n"),
            "upstream[0].hash_key: \"cookie:id\" is not \"client_address\" or \"header:<Name>\"",
        ),
        (
            format!("{ok_up}policy = \"hash\"\nhash_key = \"header:\"\n"),
            "upstream[0].hash_key: \"header:\" is not",
        ),
        (
            format!("{ok_up}connect_timeout_ms = 0\n"),
            "upstream[0].connect_timeout_ms: 0 is out of range (1..=600000)",
        ),
        (
            format!("{ok_up}read_timeout_secs = 100000\n"),
            "upstream[0].read_timeout_secs: 100000 is out of range",
        ),
        (
            format!("{ok_up}keepalive = 5000\n"),
            "upstream[0].keepalive: 5000 is out of range (0..=4096)",
        ),
        (
            format!("{ok_up}[upstream.health_check]\npath = \"health\"\n"),
            "upstream[0].health_check.path: \"health\" must start with '/'",
        ),
        (
            format!("{ok_up}[upstream.health_check]\npath = \"/h\"\ninterval_ms = 1000\ntimeout_ms = 2000\n"),
            "upstream[0].health_check.timeout_ms: 2000 must not exceed health_check.interval_ms (1000)",
        ),
        (
            format!("{ok_up}[upstream.health_check]\npath = \"/h\"\nexpect_status = 100\n"),
            "upstream[0].health_check.expect_status: 100 is out of range (200..=599)",
        ),
        (
            format!("{ok_up}[[route]]\nupstream = \"nope\"\n"),
            "route[0].upstream: \"nope\" is not the name of an [[upstream]]",
        ),
        (
            format!("{ok_up}[[route]]\nupstream = \"u\"\nstatic = true\n"),
            "route[0]: more than one of upstream, respond and static given",
        ),
        (
            format!("{ok_up}[[route]]\npath_prefix = \"/a\"\n"),
            "route[0]: none of upstream, respond and static given",
        ),
        (
            "[[route]]\nstatic = false\n".into(),
            "route[0].static: false says nothing",
        ),
        (
            "[[route]]\nstatic = true\nstrip_prefix = \"/a\"\n".into(),
            "route[0].strip_prefix: only for a route with an upstream",
        ),
        (
            "[[route]]\nrespond = { status = 503 }\nvia = \"x\"\n".into(),
            "route[0].via: only for a route with an upstream",
        ),
        (
            "[[route]]\nrespond = { status = 99 }\n".into(),
            "route[0].respond.status: 99 is not a final status code (200..=599)",
        ),
        (
            "[[route]]\nrespond = { status = 204, body = \"x\" }\n".into(),
            "route[0].respond.body: status 204 does not allow a body",
        ),
        (
            format!("{ok_up}[[route]]\nhost = \"a.example:80\"\nupstream = \"u\"\n"),
            "route[0].host: \"a.example:80\" is not a host name or IP address without port",
        ),
        (
            format!("{ok_up}[[route]]\npath_prefix = \"api\"\nupstream = \"u\"\n"),
            "route[0].path_prefix: \"api\" must start with '/'",
        ),
        (
            format!("{ok_up}[[route]]\nupstream = \"u\"\nstrip_prefix = \"/a/\"\n"),
            "route[0].strip_prefix: \"/a/\" must start with '/', not end with '/'",
        ),
        (
            format!("{ok_up}[[route]]\nupstream = \"u\"\nset_headers = {{ Host = \"x\" }}\n"),
            "route[0].set_headers: header \"Host\" cannot be configured",
        ),
        (
            format!("{ok_up}[[route]]\nupstream = \"u\"\nresponse_remove_headers = [\"Date\"]\n"),
            "route[0].response_remove_headers: header \"Date\" cannot be configured",
        ),
        (
            "[[route]]\nstatic = true\nresponse_set_headers = { A = \"b\" }\n".into(),
            "route[0].response_set_headers: only for a route with an upstream",
        ),
        (
            format!("{ok_up}[[route]]\nupstream = \"u\"\nvia = \"a b\"\n"),
            "route[0].via: \"a b\" is not a token",
        ),
        (
            format!("{ok_up}[[route]]\nupstream = \"u\"\n[[route]]\nstatic = true\npath_prefix = \"/\"\n[[route]]\nupstream = \"u\"\n"),
            "route[2]: same host and path_prefix as route[0]",
        ),
    ];
    for (extra, want) in cases {
        let file = format!("{base}{extra}");
        let got = problem(&file, &none);
        assert!(
            got.starts_with(want),
            "{extra:?}: {got:?} does not start with {want:?}"
        );
    }
}

#[test]
fn unknown_proxy_keys_are_refused_by_the_parser() {
    let up = "[[upstream]]\nname = \"u\"\nservers = [{ address = \"10.0.0.2:80\" }]\n";
    for (text, key) in [
        (format!("{up}keep_alive = 3\n"), "keep_alive"),
        (
            "[[upstream]]\nname = \"u\"\nservers = [{ addr = \"10.0.0.2:80\" }]\n".to_string(),
            "addr",
        ),
        (
            format!("{up}[upstream.health_check]\npath = \"/\"\nevery = 1\n"),
            "every",
        ),
        (
            "[[route]]\nstatic = true\nprefix = \"/\"\n".to_string(),
            "prefix",
        ),
        (
            "[[route]]\nrespond = { status = 200, type = \"x\" }\n".to_string(),
            "type",
        ),
    ] {
        let e = ConfigFile::parse(&text).unwrap_err();
        assert!(e.contains(key) && e.contains("unknown field"), "{e}");
    }
    let e = ConfigFile::parse(&format!("{up}policy = \"random\"\n")).unwrap_err();
    assert!(
        e.contains("random") && e.contains("least_outstanding"),
        "{e}"
    );
    let e = ConfigFile::parse("[[upstream]]\nservers = []\n").unwrap_err();
    assert!(e.contains("name"), "{e}");
    let e =
        ConfigFile::parse("[[route]]\nupstream = \"u\"\nset_headers = { A = 1 }\n").unwrap_err();
    assert!(e.contains("set_headers"), "{e}");
}

#[test]
fn tls_is_checked_key_by_key_and_its_files_named() {
    let dir = std::env::temp_dir().join(format!("xgate-tls-config-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let (crt, key) = write_cert(&dir, "a", &["a.test"]);
    let (_, other_key) = write_cert(&dir, "b", &["b.test"]);
    let none = Overrides::default();
    let base = "interface = \"e\"\n[[ports]]\nport = 443\ntls = true\n[[ports]]\nport = 80\n";
    let cert = |c: &PathBuf, k: &PathBuf, names: &str| {
        format!(
            "[[tls.certificate]]\ncert = \"{}\"\nkey = \"{}\"\nserver_names = {names}\n",
            c.display(),
            k.display()
        )
    };
    // A good one: port 443 only, the defaults.
    let good = format!("{base}[tls]\n{}", cert(&crt, &key, "[\"a.test\"]"));
    let c = build(&parse(&good), &none).unwrap();
    assert_eq!(c.tls.ports, vec![443]);
    assert_eq!(
        c.tls.session_cache,
        crate::config::tls::DEFAULT_SESSION_CACHE
    );
    assert!(c
        .tls
        .load(&crate::tls::TlsShared::new(0).unwrap())
        .unwrap()
        .is_some());
    // No certificate for a TLS port.
    assert!(problem(base, &none).starts_with("tls.certificate: port 443 has tls = true"));
    // A file that is not there, named.
    let missing = dir.join("missing.crt");
    let p = problem(
        &format!("{base}{}", cert(&missing, &key, "[\"a.test\"]")),
        &none,
    );
    assert!(
        p.starts_with("tls.certificate[0].cert: ") && p.contains("missing.crt"),
        "{p}"
    );
    // A key that is not the certificate's: both files named.
    let p = problem(
        &format!("{base}{}", cert(&crt, &other_key, "[\"a.test\"]")),
        &none,
    );
    assert!(p.contains("b.key") && p.contains("a.crt"), "{p}");
    // A name the certificate does not cover; no name and not the default.
    let p = problem(
        &format!("{base}{}", cert(&crt, &key, "[\"b.test\"]")),
        &none,
    );
    assert!(p.contains("does not cover server name \"b.test\""), "{p}");
    let p = problem(&format!("{base}{}", cert(&crt, &key, "[]")), &none);
    assert!(
        p.starts_with("tls.certificate[0].server_names: empty"),
        "{p}"
    );
    // Values out of range, unknown values.
    let with = |extra: &str| format!("{base}[tls]\n{extra}\n{}", cert(&crt, &key, "[\"a.test\"]"));
    assert!(
        problem(&with("handshake_timeout_ms = 5"), &none).starts_with("tls.handshake_timeout_ms")
    );
    let unknown = ConfigFile::parse(&with("min_version = \"1.1\"")).unwrap_err();
    assert!(unknown.to_string().contains("1.1"), "{unknown}");
    let strict = build(
        &parse(&with(
            "min_version = \"1.3\"\nunknown_server_name = \"reject\"",
        )),
        &none,
    )
    .unwrap();
    assert_eq!(
        strict.tls.options.min_version,
        crate::tls::MinVersion::Tls13
    );
    assert_eq!(
        strict.tls.options.unknown_server_name,
        crate::tls::UnknownServerName::Reject
    );
    let _ = std::fs::remove_dir_all(&dir);
}
