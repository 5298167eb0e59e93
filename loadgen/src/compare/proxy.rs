//! The proxy comparison's servers (issue 13's performance goal): one origin, and each proxy
//! configured to forward the proxy scenarios ([`Scenario::PROXY`]) to it.
//!
//! ```text
//!  netns <p>c: loadgen ──veth──> netns <p>s: proxy on the server's core ──lo──> origin
//!                                 (xgate bypass :18080, xgate kernel path :18081,
//!                                  nginx :18082, HAProxy :18083)     127.0.0.1:18090
//! ```
//!
//! - **The origin** is nginx on the server namespace's loopback, one worker pinned to the
//!   origin's core (never the server's: [`super::Plan`]), access log off, unlimited keep-alive
//!   requests. It answers `GET /origin/small` and `POST /origin/post` with `ok` (a static
//!   `return`, which reads and discards the request body) and `GET /origin/bytes/65536` from a
//!   file (`sendfile`, `open_file_cache`), in the byte pattern loadgen's `--verify-body` checks.
//!   No target answers `/origin/` itself, so a request that is not forwarded fails (404).
//!   It runs for the whole network's run, shared by every target; its threads are counted
//!   apart from the server's ([`super::attribution::Attribution::origin_secs`]).
//! - **xgate**: the same `xgate run` as the gateway comparison, with an `[[upstream]]` of the
//!   origin (keep-alive pool 64 per serving thread, one per client connection) and a
//!   `[[route]]` of `/origin` to it, appended to `--xgate-config`'s text. The route writes no
//!   `X-Forwarded-*` (`x_forwarded = false`), since nginx and HAProxy add none by default:
//!   each proxy does its least; xgate still sends `Via`, which it always does.
//! - **nginx**: `proxy_pass` to an `upstream` block with `keepalive 64`, `proxy_http_version
//!   1.1` and an empty `Connection` field (what nginx's documentation of `keepalive` asks for
//!   upstream keep-alive), buffers that hold a 64 KiB response in memory (no temporary file),
//!   one worker pinned to the server's core, access log off.
//! - **HAProxy**: `mode http`, `option http-keep-alive`, `http-reuse always` (idle server
//!   connections shared by every client connection), `nbthread 1` pinned with `cpu-map`,
//!   `maxconn 8192` (nginx's `worker_connections`; more needs a higher descriptor limit than
//!   this machine's 20000), no log.
//!
//! Every proxy leaves the request and response bodies as they are and adds no header but
//! xgate's `Via`.

use std::path::{Path, PathBuf};
use std::process::Stdio;

use super::scenarios::Scenario;
use super::servers::{affinity_mask, wait_answering, Server, Target, HAPROXY_PORT, NGINX_PORT};
use super::topology::{Topology, SERVER_IP};
use super::CompareError;

/// Where the origin listens, in the server's namespace.
pub const ORIGIN_PORT: u16 = 18090;
pub const ORIGIN_IP: &str = "127.0.0.1";

/// Idle upstream connections each proxy keeps (per serving thread): one per client
/// connection of the scenarios, so a closed loop never opens a new one.
pub const KEEPALIVE: u32 = 64;

/// The sizes of `/origin/bytes/{n}` the scenarios ask for.
pub const ORIGIN_BYTE_SIZES: &[usize] = &[65536];

/// A path every proxy forwards, for readiness probes.
pub const PROBE_PATH: &str = "/origin/small";

/// Starts the origin (module doc) pinned to `core`; returns once it answers.
pub fn start_origin(
    nginx: &Path,
    topo: &Topology,
    core: usize,
    dir: &Path,
) -> Result<Server, CompareError> {
    let bytes_dir = dir.join("www").join("origin").join("bytes");
    std::fs::create_dir_all(&bytes_dir).map_err(|e| CompareError::io(&bytes_dir, e))?;
    for &n in ORIGIN_BYTE_SIZES {
        let body: Vec<u8> = (0..n).map(|i| b'a' + (i % 26) as u8).collect();
        let f = bytes_dir.join(n.to_string());
        std::fs::write(&f, body).map_err(|e| CompareError::io(&f, e))?;
    }
    let mut server = spawn_nginx("origin", nginx, topo, dir, &origin_conf(dir, core))?;
    let url = format!("http://{ORIGIN_IP}:{ORIGIN_PORT}{PROBE_PATH}");
    wait_answering(&mut server, || topo.in_server("curl"), &url, &logs(dir))?;
    Ok(server)
}

/// Starts nginx as a proxy to the origin, pinned to `core`; returns once it forwards.
pub fn start_nginx_proxy(
    nginx: &Path,
    topo: &Topology,
    core: usize,
    dir: &Path,
) -> Result<Server, CompareError> {
    let mut server = spawn_nginx("nginx", nginx, topo, dir, &nginx_proxy_conf(dir, core))?;
    wait_forwarding(&mut server, topo, Target::Nginx, &logs(dir))?;
    Ok(server)
}

/// Starts HAProxy as a proxy to the origin, pinned to `core`; returns once it forwards.
pub fn start_haproxy(
    haproxy: &Path,
    topo: &Topology,
    core: usize,
    dir: &Path,
) -> Result<Server, CompareError> {
    std::fs::create_dir_all(dir).map_err(|e| CompareError::io(dir, e))?;
    let conf = dir.join("haproxy.cfg");
    std::fs::write(&conf, haproxy_conf(dir, core)).map_err(|e| CompareError::io(&conf, e))?;
    let log = dir.join("haproxy.stderr");
    let log_file = std::fs::File::create(&log).map_err(|e| CompareError::io(&log, e))?;
    // -db: in the foreground, so the PID is HAProxy's and SIGTERM stops it.
    let child = topo
        .in_server(&haproxy.to_string_lossy())
        .args(["-db", "-f", &conf.to_string_lossy()])
        .stdout(Stdio::null())
        .stderr(log_file)
        .spawn()
        .map_err(|e| CompareError::Command {
            command: format!("{} -db -f {}", haproxy.display(), conf.display()),
            message: e.to_string(),
        })?;
    let mut server = Server::new("HAProxy", child);
    wait_forwarding(&mut server, topo, Target::Haproxy, &[log])?;
    Ok(server)
}

/// Waits until `target` forwards a request to the origin (what an xgate target needs too,
/// once `xgate run` says it is ready).
pub fn wait_forwarding(
    server: &mut Server,
    topo: &Topology,
    target: Target,
    logs: &[PathBuf],
) -> Result<(), CompareError> {
    let url = format!("http://{}{PROBE_PATH}", target.addr());
    wait_answering(server, || topo.in_client("curl"), &url, logs)
}

/// What xgate's configuration adds for the proxy scenarios, after `user` (the text of
/// `--xgate-config`, if any): the origin's pool and the route to it.
pub fn xgate_config(user: Option<&str>) -> String {
    let mut s = user.map_or(String::new(), |u| format!("{u}\n"));
    s += &format!(
        r#"
# loadgen compare: the proxy scenarios' origin (loadgen/src/compare/proxy.rs).
[[upstream]]
name = "origin"
servers = [{{ address = "{ORIGIN_IP}:{ORIGIN_PORT}" }}]
keepalive = {KEEPALIVE}

[[route]]
path_prefix = "/origin"
upstream = "origin"
x_forwarded = false
"#
    );
    s
}

fn logs(dir: &Path) -> Vec<PathBuf> {
    vec![dir.join("nginx.stderr"), dir.join("error.log")]
}

/// Writes `conf` into `dir` and starts nginx with it in the server's namespace.
fn spawn_nginx(
    what: &'static str,
    nginx: &Path,
    topo: &Topology,
    dir: &Path,
    conf_text: &str,
) -> Result<Server, CompareError> {
    std::fs::create_dir_all(dir).map_err(|e| CompareError::io(dir, e))?;
    let conf = dir.join("nginx.conf");
    std::fs::write(&conf, conf_text).map_err(|e| CompareError::io(&conf, e))?;
    let log = dir.join("nginx.stderr");
    let log_file = std::fs::File::create(&log).map_err(|e| CompareError::io(&log, e))?;
    let child = topo
        .in_server(&nginx.to_string_lossy())
        .args(["-c", &conf.to_string_lossy(), "-p", &dir.to_string_lossy()])
        .args(["-e", &dir.join("error.log").to_string_lossy()])
        .stdout(Stdio::null())
        .stderr(log_file)
        .spawn()
        .map_err(|e| CompareError::Command {
            command: format!("{} -c {}", nginx.display(), conf.display()),
            message: e.to_string(),
        })?;
    Ok(Server::new(what, child))
}

/// The part every nginx configuration here shares: one worker pinned to `core`, files in
/// `dir`, no access log, unlimited keep-alive requests from clients.
fn nginx_common(dir: &Path, core: usize) -> String {
    format!(
        r#"worker_processes 1;
worker_cpu_affinity {mask};
daemon off;
pid {dir}/nginx.pid;
error_log {dir}/error.log warn;
events {{
    worker_connections 8192;
    multi_accept on;
}}
"#,
        mask = affinity_mask(core),
        dir = dir.display(),
    )
}

/// The temporary paths nginx would otherwise want under its compiled-in prefix.
fn nginx_temp_paths(dir: &Path) -> String {
    let d = dir.display();
    format!(
        "    client_body_temp_path {d}/body;\n    proxy_temp_path {d}/proxy;\n    fastcgi_temp_path {d}/fastcgi;\n    uwsgi_temp_path {d}/uwsgi;\n    scgi_temp_path {d}/scgi;\n"
    )
}

fn origin_conf(dir: &Path, core: usize) -> String {
    format!(
        r#"{common}http {{
    access_log off;
    server_tokens off;
    keepalive_requests 1000000000;
    keepalive_timeout 300s;
    sendfile on;
    open_file_cache max=64 inactive=600s;
    open_file_cache_valid 600s;
    client_body_buffer_size 64k;
    client_max_body_size 16m;
{temp}    server {{
        listen {ORIGIN_IP}:{ORIGIN_PORT} backlog=1024;
        location = /origin/small {{
            default_type text/plain;
            return 200 "ok";
        }}
        location = /origin/post {{
            default_type text/plain;
            return 200 "ok";
        }}
        location /origin/bytes/ {{
            root {www};
            default_type application/octet-stream;
        }}
    }}
}}
"#,
        common = nginx_common(dir, core),
        temp = nginx_temp_paths(dir),
        www = dir.join("www").display(),
    )
}

fn nginx_proxy_conf(dir: &Path, core: usize) -> String {
    format!(
        r#"{common}http {{
    access_log off;
    server_tokens off;
    keepalive_requests 1000000000;
    keepalive_timeout 300s;
    client_body_buffer_size 64k;
    client_max_body_size 16m;
{temp}    upstream origin {{
        server {ORIGIN_IP}:{ORIGIN_PORT};
        keepalive {KEEPALIVE};
        keepalive_requests 1000000000;
        keepalive_timeout 300s;
    }}
    server {{
        listen {SERVER_IP}:{NGINX_PORT} backlog=1024;
        location /origin/ {{
            proxy_pass http://origin;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_buffer_size 16k;
            proxy_buffers 8 16k;
            proxy_busy_buffers_size 32k;
            proxy_max_temp_file_size 0;
        }}
    }}
}}
"#,
        common = nginx_common(dir, core),
        temp = nginx_temp_paths(dir),
    )
}

fn haproxy_conf(dir: &Path, core: usize) -> String {
    // `cpu-map 1/all`: HAProxy 2.6 with one thread leaves `1/1` unapplied (checked in
    // /proc: the thread stayed on every CPU); the whole process's set is applied.
    format!(
        r#"global
    nbthread 1
    cpu-map 1/all {core}
    maxconn 8192
    pidfile {dir}/haproxy.pid

defaults
    mode http
    option http-keep-alive
    http-reuse always
    timeout connect 5s
    timeout client 300s
    timeout server 300s
    timeout http-request 300s
    timeout http-keep-alive 300s

frontend proxy
    bind {SERVER_IP}:{HAPROXY_PORT}
    default_backend origin

backend origin
    server origin {ORIGIN_IP}:{ORIGIN_PORT}
"#,
        dir = dir.display(),
    )
}

/// Whether a run of these scenarios is the proxy comparison (every scenario a proxy one) or
/// the gateway comparison (none); a mix is refused, since HAProxy answers only the first and
/// the origin would run beside the second. The refusal names both halves of the mix and the
/// two commands to run instead.
pub fn is_proxy_run(scenarios: &[Scenario]) -> Result<bool, String> {
    let (proxy, gateway): (Vec<Scenario>, Vec<Scenario>) =
        scenarios.iter().partition(|s| s.is_proxy());
    match (proxy.is_empty(), gateway.is_empty()) {
        (true, _) => Ok(false),
        (false, true) => Ok(true),
        (false, false) => {
            let names = |v: &[Scenario]| v.iter().map(|s| s.name()).collect::<Vec<_>>().join(", ");
            Err(format!(
                "the proxy scenarios ({}) and the gateway's ({}) cannot run in one `loadgen \
                 compare`: the first measure proxies forwarding to an origin, the second \
                 servers answering themselves, and each writes its own summary \
                 (proxy-<network>.md, <network>.md); run them as two commands, `--scenario \
                 proxy` (or proxy scenarios by name) and the gateway's scenarios",
                names(&proxy),
                names(&gateway)
            ))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_origin_answers_each_proxy_scenario_s_path() {
        let c = origin_conf(Path::new("/d"), 0);
        assert!(c.contains("listen 127.0.0.1:18090 backlog=1024;"), "{c}");
        assert!(c.contains("worker_cpu_affinity 1;"), "{c}");
        for s in Scenario::PROXY {
            let args = s.args(None);
            let path = &args[args.iter().position(|a| a == "--path").unwrap() + 1];
            let served = c.contains(&format!("location = {path} "))
                || path
                    .rsplit_once('/')
                    .is_some_and(|(dir, _)| c.contains(&format!("location {dir}/ ")));
            assert!(served, "{path} not served:\n{c}");
        }
        for setting in [
            "access_log off;",
            "keepalive_requests 1000000000;",
            "sendfile on;",
        ] {
            assert!(c.contains(setting), "{setting} missing:\n{c}");
        }
        assert_eq!(ORIGIN_BYTE_SIZES, &[65536]);
    }

    #[test]
    fn nginx_proxies_with_upstream_keep_alive() {
        let c = nginx_proxy_conf(Path::new("/d"), 1);
        for setting in [
            "worker_cpu_affinity 10;",
            "listen 10.231.0.1:18082 backlog=1024;",
            "server 127.0.0.1:18090;",
            "keepalive 64;",
            "proxy_pass http://origin;",
            "proxy_http_version 1.1;",
            "proxy_set_header Connection \"\";",
            "proxy_max_temp_file_size 0;",
            "access_log off;",
        ] {
            assert!(c.contains(setting), "{setting} missing:\n{c}");
        }
        // 8 x 16k holds the 64 KiB response in memory.
        assert!(8 * 16 * 1024 >= ORIGIN_BYTE_SIZES[0]);
    }

    #[test]
    fn haproxy_reuses_server_connections_on_one_pinned_thread() {
        let c = haproxy_conf(Path::new("/d"), 1);
        for setting in [
            "nbthread 1",
            "cpu-map 1/all 1",
            "mode http",
            "option http-keep-alive",
            "http-reuse always",
            "bind 10.231.0.1:18083",
            "server origin 127.0.0.1:18090",
        ] {
            assert!(c.contains(setting), "{setting} missing:\n{c}");
        }
        assert!(!c.contains("log "), "no logging:\n{c}");
    }

    #[test]
    fn xgate_gets_the_origin_s_pool_and_route_after_the_user_s_file() {
        let c = xgate_config(Some("[poller]\nbusy_poll = false"));
        assert!(c.starts_with("[poller]\nbusy_poll = false\n"), "{c}");
        let pool = c.find("[[upstream]]").expect("a pool");
        let route = c.find("[[route]]").expect("a route");
        assert!(pool < route);
        assert!(c.contains("address = \"127.0.0.1:18090\""), "{c}");
        assert!(c.contains("keepalive = 64"), "{c}");
        assert!(
            c.contains("path_prefix = \"/origin\"\nupstream = \"origin\"\nx_forwarded = false"),
            "{c}"
        );
        assert!(xgate_config(None)
            .trim_start()
            .starts_with("# loadgen compare"));
    }

    #[test]
    fn proxy_and_gateway_scenarios_do_not_mix() {
        assert_eq!(is_proxy_run(&Scenario::PROXY), Ok(true));
        assert_eq!(is_proxy_run(&Scenario::ALL), Ok(false));
        assert_eq!(is_proxy_run(&[]), Ok(false));
        let e =
            is_proxy_run(&[Scenario::KeepAlive, Scenario::ProxyGet, Scenario::Echo1k]).unwrap_err();
        assert!(
            e.contains("proxy scenarios (proxy-get) and the gateway's (keep-alive, echo-1k)"),
            "{e}"
        );
        assert!(e.contains("run them as two commands"), "{e}");
    }
}
