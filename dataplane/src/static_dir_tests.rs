//! The directory loader: what it reads, refuses and names, and the routes it gives an [`App`].

use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

use std::fs;

use xgate_core::app::{
    App, AppConfig, Handler, RouteConfig, StaticError, StaticFiles, StaticLimits,
};

use super::load_static_dir;

/// A directory of its own under the system's temporary directory, removed on drop.
pub(crate) struct TempDir(PathBuf);

impl TempDir {
    pub(crate) fn new(name: &str) -> Self {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let dir =
            std::env::temp_dir().join(format!("xgate-static-{}-{n}-{name}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }

    pub(crate) fn path(&self) -> &Path {
        &self.0
    }

    /// Writes `rel` (parents created).
    pub(crate) fn write(&self, rel: &str, body: &[u8]) -> PathBuf {
        let path = self.0.join(rel);
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(&path, body).unwrap();
        path
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

fn load(dir: &Path, prefix: &str) -> Result<StaticFiles, StaticError> {
    load_static_dir(dir, prefix, &StaticLimits::default())
}

fn app(files: StaticFiles) -> App {
    App::new(&AppConfig {
        files,
        ..AppConfig::default()
    })
    .unwrap()
}

/// (status, head, body) of a static answer.
fn answer(app: &App, method: &str, path: &str) -> (u16, String, Vec<u8>) {
    let Handler::Static(id) = app.handle(method.as_bytes(), path.as_bytes()) else {
        panic!("{method} {path}: not a static answer")
    };
    let p = app.prepared(id);
    (
        p.status(),
        String::from_utf8_lossy(p.head()).into_owned(),
        p.body().to_vec(),
    )
}

fn paths(files: &StaticFiles) -> Vec<String> {
    files
        .paths()
        .map(|p| String::from_utf8(p.to_vec()).unwrap())
        .collect()
}

#[test]
fn nested_files_index_html_and_head() {
    let d = TempDir::new("nested");
    d.write("index.html", b"<h1>home</h1>");
    d.write("css/site.css", b"body{}");
    d.write("a/b/c.txt", b"deep");
    d.write("a/index.html", b"<p>a</p>");
    d.write("empty.bin", b"");
    let files = load(d.path(), "/").unwrap();
    assert_eq!((files.files(), files.bytes()), (5, 13 + 6 + 4 + 8));
    assert_eq!(
        paths(&files),
        [
            "/",
            "/a",
            "/a/",
            "/a/b/c.txt",
            "/a/index.html",
            "/css/site.css",
            "/empty.bin",
            "/index.html"
        ]
    );
    let app = app(files);
    let (status, head, body) = answer(&app, "GET", "/css/site.css");
    assert_eq!((status, body.as_slice()), (200, &b"body{}"[..]));
    assert!(
        head.ends_with("Content-Type: text/css; charset=utf-8\r\n"),
        "{head}"
    );
    assert_eq!(
        app.handle(b"HEAD", b"/css/site.css"),
        app.handle(b"GET", b"/css/site.css")
    );
    assert_eq!(answer(&app, "GET", "/a/b/c.txt").2, b"deep");
    assert_eq!(answer(&app, "GET", "/empty.bin").2, b"");
    // Directories with an index.html: `dir/` answers it, `dir` redirects there.
    assert_eq!(answer(&app, "GET", "/a/").2, b"<p>a</p>");
    assert_eq!(answer(&app, "GET", "/a/index.html").2, b"<p>a</p>");
    let (status, head, _) = answer(&app, "GET", "/a");
    assert_eq!(status, 301);
    assert!(head.contains("\r\nLocation: /a/\r\n"), "{head}");
    // Files win over the built-in routes; the others stay.
    assert_eq!(answer(&app, "GET", "/").2, b"<h1>home</h1>");
    assert_eq!(answer(&app, "GET", "/health").2, b"ok");
    // Only GET and HEAD; no directory listing; nothing under a file.
    let (status, head, _) = answer(&app, "POST", "/css/site.css");
    assert_eq!(status, 405);
    assert!(head.contains("\r\nAllow: GET, HEAD\r\n"), "{head}");
    assert_eq!(answer(&app, "GET", "/css/").0, 404);
    assert_eq!(answer(&app, "GET", "/css").0, 404);
    assert_eq!(answer(&app, "GET", "/a/b/c.txt/x").0, 404);
    // Exact paths: nothing is normalised, nothing is looked up on disk.
    assert_eq!(answer(&app, "GET", "/a/../index.html").0, 404);
    assert_eq!(answer(&app, "GET", "//index.html").0, 404);
}

#[test]
fn a_prefix_maps_the_directory_below_it() {
    let d = TempDir::new("prefix");
    d.write("index.html", b"i");
    d.write("js/app.js", b"j");
    for prefix in ["/static", "/static/"] {
        let files = load(d.path(), prefix).unwrap();
        assert_eq!(
            paths(&files),
            [
                "/static",
                "/static/",
                "/static/index.html",
                "/static/js/app.js"
            ]
        );
        let app = app(files);
        assert_eq!(answer(&app, "GET", "/static/js/app.js").2, b"j");
        assert!(answer(&app, "GET", "/static")
            .1
            .contains("\r\nLocation: /static/\r\n"));
        // The built-in index is not shadowed by a file under another prefix.
        assert!(answer(&app, "GET", "/").2.starts_with(b"xgate"));
    }
    for bad in [
        "static", "/a//b", "/a/../b", "/./x", "/a b", "/a?b", "/%41", "",
    ] {
        assert!(
            matches!(load(d.path(), bad), Err(StaticError::BadPrefix { .. })),
            "{bad:?}"
        );
    }
}

#[test]
fn configured_routes_win_over_files_and_share_their_allow() {
    let d = TempDir::new("configured");
    d.write("x.txt", b"file");
    d.write("y.txt", b"file y");
    let route = |method: &str, path: &str, body: &[u8]| RouteConfig {
        method: method.into(),
        path: path.into(),
        status: 200,
        headers: vec![],
        body: body.to_vec(),
    };
    let app = App::new(&AppConfig {
        routes: vec![
            route("GET", "/x.txt", b"route"),
            route("POST", "/y.txt", b"posted"),
        ],
        files: load(d.path(), "/").unwrap(),
        ..AppConfig::default()
    })
    .unwrap();
    assert_eq!(answer(&app, "GET", "/x.txt").2, b"route");
    assert_eq!(answer(&app, "HEAD", "/x.txt").2, b"route");
    assert_eq!(answer(&app, "GET", "/y.txt").2, b"file y");
    assert_eq!(answer(&app, "POST", "/y.txt").2, b"posted");
    assert!(answer(&app, "PUT", "/y.txt")
        .1
        .contains("\r\nAllow: POST, GET, HEAD\r\n"));
}

#[test]
fn names_are_percent_encoded_or_refused() {
    let d = TempDir::new("names");
    d.write("my file.txt", b"1");
    d.write("caf\u{e9}.html", b"2");
    d.write("q?#%.txt", b"3");
    d.write("a-b_c~d!$&'()*+,;=:@.txt", b"4");
    let files = load(d.path(), "/").unwrap();
    assert_eq!(
        paths(&files),
        [
            "/a-b_c~d!$&'()*+,;=:@.txt",
            "/caf%C3%A9.html",
            "/my%20file.txt",
            "/q%3F%23%25.txt"
        ]
    );
    let app = app(files);
    assert_eq!(answer(&app, "GET", "/my%20file.txt").2, b"1");
    assert_eq!(answer(&app, "GET", "/caf%C3%A9.html").2, b"2");

    for (name, reason) in [
        ("a|b", "has one of"),
        ("a[1]", "has one of"),
        ("back\\slash", "has one of"),
        ("line\nbreak", "control characters"),
        ("tab\there", "control characters"),
    ] {
        let d = TempDir::new("badname");
        d.write("ok.txt", b"");
        let path = d.write(name, b"x");
        let e = load(d.path(), "/").unwrap_err();
        assert!(
            matches!(&e, StaticError::BadName { path: p, .. } if *p == path),
            "{e}"
        );
        assert!(e.to_string().contains(reason), "{e}");
        assert!(e.to_string().starts_with(&path.display().to_string()));
    }
    // A name that is not UTF-8 (Linux names are bytes).
    let d = TempDir::new("latin1");
    let name = std::ffi::OsStr::from_bytes(b"caf\xe9.txt");
    fs::write(d.path().join(name), b"x").unwrap();
    let e = load(d.path(), "/").unwrap_err();
    assert!(e.to_string().ends_with("the name is not UTF-8"), "{e}");
}

#[test]
fn symlinks_are_followed_to_files_inside_only() {
    use std::os::unix::fs::symlink;
    let outside = TempDir::new("outside");
    let secret = outside.write("secret", b"secret");
    let d = TempDir::new("links");
    d.write("real/app.js", b"js");
    symlink("real/app.js", d.path().join("latest.js")).unwrap();
    let files = load(d.path(), "/").unwrap();
    assert_eq!(paths(&files), ["/latest.js", "/real/app.js"]);
    assert_eq!(answer(&app(files), "GET", "/latest.js").2, b"js");

    // static_dir itself may be a link (a deploy's `current`).
    let current = outside.path().join("current");
    symlink(d.path(), &current).unwrap();
    assert_eq!(load(&current, "/").unwrap().files(), 2);

    let link = d.path().join("leak");
    symlink(&secret, &link).unwrap();
    let e = load(d.path(), "/").unwrap_err();
    assert!(
        matches!(&e, StaticError::SymlinkOutside { path, .. } if *path == link),
        "{e}"
    );
    fs::remove_file(&link).unwrap();
    // Relative escapes are resolved the same way.
    symlink("../../../../../../../../etc/passwd", &link).unwrap();
    assert!(matches!(
        load(d.path(), "/"),
        Err(StaticError::SymlinkOutside { .. })
    ));
    fs::remove_file(&link).unwrap();

    symlink("real", &link).unwrap();
    let e = load(d.path(), "/").unwrap_err();
    assert_eq!(e, StaticError::SymlinkToDirectory { path: link.clone() });
    fs::remove_file(&link).unwrap();
    symlink(".", &link).unwrap();
    assert!(matches!(
        load(d.path(), "/"),
        Err(StaticError::SymlinkToDirectory { .. })
    ));
    fs::remove_file(&link).unwrap();

    symlink("nowhere", &link).unwrap();
    let e = load(d.path(), "/").unwrap_err();
    assert!(
        matches!(&e, StaticError::Read { path, .. } if *path == link),
        "{e}"
    );
}

#[test]
fn sockets_fifos_and_devices_are_refused() {
    let d = TempDir::new("special");
    let sock = d.path().join("s.sock");
    let _listener = std::os::unix::net::UnixListener::bind(&sock).unwrap();
    let e = load(d.path(), "/").unwrap_err();
    assert_eq!(e, StaticError::NotRegular { path: sock });
}

#[test]
fn bounds_name_the_file_that_crosses_them() {
    let d = TempDir::new("bounds");
    d.write("a", &[b'a'; 100]);
    d.write("b", &[b'b'; 100]);
    d.write("c/d", &[b'd'; 100]);
    let limits = |max_bytes, max_files| StaticLimits {
        max_bytes,
        max_files,
    };
    assert_eq!(
        load_static_dir(d.path(), "/", &limits(300, 3))
            .unwrap()
            .bytes(),
        300
    );
    assert_eq!(
        load_static_dir(d.path(), "/", &limits(299, 3)).unwrap_err(),
        StaticError::TooManyBytes {
            path: d.path().join("c/d"),
            limit: 299
        }
    );
    assert_eq!(
        load_static_dir(d.path(), "/", &limits(300, 2)).unwrap_err(),
        StaticError::TooManyFiles {
            path: d.path().join("c/d"),
            limit: 2
        }
    );
    assert_eq!(
        load_static_dir(d.path(), "/", &limits(50, 3))
            .unwrap_err()
            .to_string(),
        format!(
            "{}: the files add up to more than 50 bytes",
            d.path().join("a").display()
        )
    );
}

#[test]
fn empty_missing_and_unreadable_directories() {
    let d = TempDir::new("empty");
    let files = load(d.path(), "/").unwrap();
    assert_eq!((files.files(), files.paths().count()), (0, 0));
    let missing = d.path().join("missing");
    let e = load(&missing, "/").unwrap_err();
    assert!(
        matches!(&e, StaticError::Read { path, .. } if *path == missing),
        "{e}"
    );
    let file = d.write("file", b"");
    let e = load(&file, "/").unwrap_err();
    assert!(e.to_string().ends_with("not a directory"), "{e}");

    // Unreadable for anyone but root (who reads it all the same).
    use std::os::unix::fs::PermissionsExt;
    let secret = d.write("dir/secret.txt", b"s");
    fs::set_permissions(&secret, fs::Permissions::from_mode(0o000)).unwrap();
    if fs::read(&secret).is_err() {
        let e = load(d.path(), "/").unwrap_err();
        assert!(
            matches!(&e, StaticError::Read { path, .. } if *path == secret),
            "{e}"
        );
    }
}
