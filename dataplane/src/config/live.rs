//! What a running gateway may change without a restart, and where it reads it again: the same
//! file and the same flags, checked as at start (`xgate reload`, SIGHUP). Only `[http]`,
//! `[app]`, `[[upstream]]`, `[[route]]` and `[tls]` (but its session cache) may change; any other change is refused with the
//! keys that would need a restart.

use std::path::PathBuf;

use crate::app::AppConfig;
use crate::http::HttpLimits;

use super::{build, invalid, ConfigError, ConfigFile, Overrides, ProxyConfig, TlsConfig};

/// What a reload may change: the routes, the HTTP limits (both paths) and the proxy's pools
/// and routes. A reload builds new pools from `proxy`; a request in flight is to keep the
/// pool it started with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LiveConfig {
    pub app: AppConfig,
    pub http: HttpLimits,
    pub proxy: ProxyConfig,
    /// The TLS ports' certificates and policies (the ports themselves need a restart).
    pub tls: TlsConfig,
}

/// Where a running gateway's configuration came from (the file and the command-line values),
/// kept to read it again at a reload (`xgate reload`, SIGHUP), checked as at start. Only
/// `[http]`, `[app]`, `[[upstream]]`, `[[route]]` and `[tls]` (but its session cache) may change; any other change is refused
/// with the keys that would need a restart.
#[derive(Debug, Clone)]
pub struct ConfigSource {
    path: Option<PathBuf>,
    overrides: Overrides,
    /// The file as last loaded (at start, then at each accepted reload).
    loaded: ConfigFile,
}

impl ConfigSource {
    /// `loaded` is the file the gateway started with (`None` path: started without a file).
    pub fn new(path: Option<PathBuf>, overrides: Overrides, loaded: ConfigFile) -> Self {
        ConfigSource {
            path,
            overrides,
            loaded,
        }
    }

    /// The new routes and limits, or why not (the running ones then stay).
    pub fn reread(&mut self) -> Result<LiveConfig, ConfigError> {
        let Some(path) = &self.path else {
            return Err(invalid(
                "--config",
                "the gateway was started without a configuration file: nothing to reload",
            ));
        };
        let file = ConfigFile::load(path)?;
        let changed = self.loaded.restart_only_changes(&file);
        if !changed.is_empty() {
            return Err(invalid(
                changed.join(", "),
                "changed, and only [http], [app], [[upstream]], [[route]] and [tls] (not its \
                 session_cache and handshakes_per_round) can change without a restart (switch ports with `xgate bypass`); nothing was reloaded",
            ));
        }
        let built = build(&file, &self.overrides)?;
        self.loaded = file;
        Ok(LiveConfig {
            app: built.gateway.app,
            http: built.gateway.engine.http,
            proxy: built.proxy,
            tls: built.tls,
        })
    }
}

impl ConfigFile {
    /// The keys (top-level names and sections) other than `[http]`, `[app]`, `[[upstream]]`
    /// and `[[route]]` whose values differ in `new`.
    pub fn restart_only_changes(&self, new: &ConfigFile) -> Vec<&'static str> {
        let ConfigFile {
            interface,
            listen_addr,
            backlog,
            shutdown_grace_secs,
            cgroup,
            netns,
            ports,
            bypass,
            kernel_path,
            tcp,
            http: _,
            app: _,
            admin,
            log,
            access_log,
            upstream: _,
            route: _,
            tls,
        } = self;
        let mut changed = Vec::new();
        let mut check = |name, same: bool| {
            if !same {
                changed.push(name);
            }
        };
        check("interface", *interface == new.interface);
        check("listen_addr", *listen_addr == new.listen_addr);
        check("backlog", *backlog == new.backlog);
        check(
            "shutdown_grace_secs",
            *shutdown_grace_secs == new.shutdown_grace_secs,
        );
        check("cgroup", *cgroup == new.cgroup);
        check("netns", *netns == new.netns);
        check("[[ports]]", *ports == new.ports);
        check("[bypass]", *bypass == new.bypass);
        check("[kernel_path]", *kernel_path == new.kernel_path);
        check("[tcp]", *tcp == new.tcp);
        check("[admin]", *admin == new.admin);
        check("[log]", *log == new.log);
        check("[access_log]", *access_log == new.access_log);
        // The session cache is made once, for the life of the process (the ticket keys with
        // it); the certificates and policies may change.
        check(
            "tls.session_cache",
            tls.session_cache == new.tls.session_cache,
        );
        check(
            "tls.handshakes_per_round",
            tls.handshakes_per_round == new.tls.handshakes_per_round,
        );
        changed
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::app::App;
    use crate::time::Duration;

    const START: &str = "interface = \"eth1\"\n[[ports]]\nport = 80\n[http]\nheader_timeout_secs = 3\n[[app.routes]]\npath = \"/v\"\nbody = \"one\"\n";

    /// A reloader of a file in a fresh temporary directory, started from `START`.
    fn reloader(name: &str) -> (ConfigSource, PathBuf) {
        let dir = std::env::temp_dir().join(format!("xgate-reload-{}-{name}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("xgate.toml");
        std::fs::write(&path, START).unwrap();
        let loaded = ConfigFile::load(&path).unwrap();
        (
            ConfigSource::new(Some(path.clone()), Overrides::default(), loaded),
            path,
        )
    }

    #[test]
    fn routes_and_http_limits_reload() {
        let (mut r, path) = reloader("ok");
        std::fs::write(&path, START.replace("one", "two").replace("= 3", "= 7")).unwrap();
        let next = r.reread().unwrap();
        assert_eq!(next.app.routes[0].body, b"two");
        assert_eq!(next.http.header_timeout, Duration::from_secs(7));
        let _ = std::fs::remove_dir_all(path.parent().unwrap());
    }

    #[test]
    fn restart_only_keys_are_refused_and_named_and_the_old_file_stays_the_reference() {
        let (mut r, path) = reloader("restart");
        let changed = START.replace("port = 80", "port = 81") + "[tcp]\nmss = 1400\n";
        std::fs::write(&path, changed).unwrap();
        let e = r.reread().unwrap_err().to_string();
        assert!(e.starts_with("[[ports]], [tcp]: changed"), "{e}");
        std::fs::write(
            &path,
            START.to_string() + "[access_log]\npath = \"/tmp/x.log\"\n",
        )
        .unwrap();
        let e = r.reread().unwrap_err().to_string();
        assert!(e.starts_with("[access_log]: changed"), "{e}");
        // Put back: a routes change alone is accepted again.
        std::fs::write(&path, START.replace("one", "three")).unwrap();
        assert_eq!(r.reread().unwrap().app.routes[0].body, b"three");
        let _ = std::fs::remove_dir_all(path.parent().unwrap());
    }

    #[test]
    fn an_invalid_file_is_refused_with_the_key() {
        let (mut r, path) = reloader("invalid");
        std::fs::write(&path, START.replace("= 3", "= 0")).unwrap();
        let e = r.reread().unwrap_err().to_string();
        assert!(e.contains("http.header_timeout_secs"), "{e}");
        std::fs::write(&path, START.replace("[http]", "[htp]")).unwrap();
        assert!(matches!(r.reread(), Err(ConfigError::Parse { .. })));
        std::fs::remove_file(&path).unwrap();
        assert!(matches!(r.reread(), Err(ConfigError::Read { .. })));
        let _ = std::fs::remove_dir_all(path.parent().unwrap());
    }

    #[test]
    fn a_reload_reads_the_static_files_again() {
        let (mut r, path) = reloader("static");
        let www = path.parent().unwrap().join("www");
        std::fs::create_dir_all(www.join("css")).unwrap();
        std::fs::write(www.join("css/a.css"), "one").unwrap();
        let with_dir = START.replace(
            "[[app.routes]]",
            &format!("[app]\nstatic_dir = '{}'\n[[app.routes]]", www.display()),
        );
        std::fs::write(&path, &with_dir).unwrap();
        let body = |next: &LiveConfig, at: &[u8]| {
            let app = App::new(&next.app).unwrap();
            match app.handle(b"GET", at) {
                crate::app::Handler::Static(id) => app.prepared(id).body().to_vec(),
                h => panic!("{h:?}"),
            }
        };
        let next = r.reread().unwrap();
        assert_eq!(body(&next, b"/css/a.css"), b"one");
        // Same configuration file, changed and added files: read again.
        std::fs::write(www.join("css/a.css"), "two").unwrap();
        std::fs::write(www.join("new.txt"), "new").unwrap();
        let next = r.reread().unwrap();
        assert_eq!(body(&next, b"/css/a.css"), b"two");
        assert_eq!(body(&next, b"/new.txt"), b"new");
        // A directory that no longer loads is refused, naming the key and the file.
        std::fs::write(www.join("bad|name"), "x").unwrap();
        let e = r.reread().unwrap_err().to_string();
        assert!(
            e.starts_with("app.static_dir: ") && e.contains("bad|name"),
            "{e}"
        );
        let _ = std::fs::remove_dir_all(path.parent().unwrap());
    }

    #[test]
    fn upstreams_and_proxy_routes_reload_and_are_checked_as_at_start() {
        use crate::proxy::route::{RouteTarget, UpstreamId};
        let (mut r, path) = reloader("proxy");
        let pool = "[[upstream]]\nname = \"u\"\nservers = [{ address = \"10.0.0.2:80\" }]\n";
        let routed = format!("{START}{pool}[[route]]\npath_prefix = \"/api\"\nupstream = \"u\"\n");
        std::fs::write(&path, &routed).unwrap();
        let next = r.reread().unwrap();
        let id = next.proxy.routes.find(None, b"/api/x").unwrap();
        assert_eq!(
            next.proxy.routes.target(id),
            &RouteTarget::Upstream(UpstreamId(0))
        );
        assert_eq!(
            next.proxy.upstream(UpstreamId(0)).pool.servers[0].addr,
            "10.0.0.2:80".parse().unwrap()
        );
        // A new server address is a new pool.
        std::fs::write(&path, routed.replace("10.0.0.2", "10.0.0.9")).unwrap();
        let next = r.reread().unwrap();
        assert_eq!(
            next.proxy.upstreams[0].pool.servers[0].addr,
            "10.0.0.9:80".parse().unwrap()
        );
        // A route to a pool that is gone is refused; the running configuration stays.
        std::fs::write(&path, routed.replace("name = \"u\"", "name = \"v\"")).unwrap();
        let e = r.reread().unwrap_err().to_string();
        assert!(
            e.starts_with("route[0].upstream: \"u\" is not the name"),
            "{e}"
        );
        // Without the sections, nothing is proxied any more.
        std::fs::write(&path, START).unwrap();
        assert!(r.reread().unwrap().proxy.routes.is_empty());
        let _ = std::fs::remove_dir_all(path.parent().unwrap());
    }

    #[test]
    fn a_gateway_started_without_a_file_has_nothing_to_reload() {
        let mut r = ConfigSource::new(None, Overrides::default(), ConfigFile::default());
        let e = r.reread().unwrap_err().to_string();
        assert!(e.contains("without a configuration file"), "{e}");
    }
}
