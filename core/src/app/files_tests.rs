//! The file routes a [`StaticFiles`] gives an [`App`] (the directory loader's own tests are in
//! `dataplane::static_dir`).

use super::super::{App, AppConfig, Handler, RouteConfig};
use super::*;

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

#[test]
fn content_types_come_from_the_extension() {
    for (name, want) in [
        ("index.html", "text/html; charset=utf-8"),
        ("a.HTM", "text/html; charset=utf-8"),
        ("site.css", "text/css; charset=utf-8"),
        ("app.JS", "text/javascript; charset=utf-8"),
        ("m.mjs", "text/javascript; charset=utf-8"),
        ("data.json", "application/json"),
        ("notes.txt", "text/plain; charset=utf-8"),
        ("logo.svg", "image/svg+xml"),
        ("p.png", "image/png"),
        ("p.jpg", "image/jpeg"),
        ("p.jpeg", "image/jpeg"),
        ("p.gif", "image/gif"),
        ("p.webp", "image/webp"),
        ("favicon.ico", "image/x-icon"),
        ("m.wasm", "application/wasm"),
        ("f.woff2", "font/woff2"),
        ("feed.xml", "text/xml; charset=utf-8"),
        ("doc.pdf", "application/pdf"),
        ("a.tar.gz", "application/gzip"),
        ("Makefile", "application/octet-stream"),
        (".htaccess", "application/octet-stream"),
        ("x.unknown", "application/octet-stream"),
        ("trailing.", "application/octet-stream"),
    ] {
        assert_eq!(content_type(name), want, "{name}");
    }
}

#[test]
fn thousands_of_files_are_found_by_binary_search() {
    let n = 20_000;
    let files = StaticFiles::from_memory(
        "/f",
        (0..n).map(|i| {
            (
                format!("d{}/file{i}.txt", i % 97),
                i.to_string().into_bytes(),
            )
        }),
    )
    .unwrap();
    let route = RouteConfig {
        method: "PUT".into(),
        path: "/f/d3/file3.txt".into(),
        status: 204,
        headers: vec![],
        body: vec![],
    };
    let app = App::new(&AppConfig {
        routes: vec![route],
        files,
        ..AppConfig::default()
    })
    .unwrap();
    for i in 0..n {
        let path = format!("/f/d{}/file{i}.txt", i % 97);
        assert_eq!(answer(&app, "GET", &path).2, i.to_string().as_bytes());
    }
    assert_eq!(answer(&app, "PUT", "/f/d3/file3.txt").0, 204);
    assert_eq!(answer(&app, "GET", "/f/d3/file20001.txt").0, 404);
    assert_eq!(answer(&app, "GET", "/health").2, b"ok");
    // One shared 405 for all of them.
    assert_eq!(
        app.handle(b"DELETE", b"/f/d1/file1.txt"),
        app.handle(b"DELETE", b"/f/d2/file2.txt")
    );
}

#[test]
fn apps_built_from_one_config_share_the_file_bytes() {
    let files =
        StaticFiles::from_memory("/", [("big.bin".to_string(), vec![7u8; 1 << 20])]).unwrap();
    let config = AppConfig {
        files,
        ..AppConfig::default()
    };
    let (a, b) = (App::new(&config).unwrap(), App::new(&config).unwrap());
    let body = |app: &App| {
        let Handler::Static(id) = app.handle(b"GET", b"/big.bin") else {
            panic!()
        };
        app.prepared(id).body().as_ptr()
    };
    assert_eq!(body(&a), body(&b));
}
