//! The web page (`--http`): in headless Chromium while tests run, the
//! visitor view seen from different loopback addresses, and requests over
//! the limits refused while a test goes on undisturbed.
#![cfg(feature = "web")]

mod common;

use common::{Raw, Server, TempDir, client_spawn, client_wait, tcp_cmd};
use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// One GET from `from`: (status code, body). `extra` is sent as more header lines.
fn get_from(from: Ipv4Addr, web: SocketAddr, path: &str, extra: &str) -> (u16, String) {
    let mut r = Raw::connect_from(from, web);
    r.send(format!("GET {path} HTTP/1.1\r\nHost: x\r\n{extra}\r\n").as_bytes());
    let (raw, _) = r.read_to_close(Duration::from_secs(5));
    parse_response(&raw)
}

fn parse_response(raw: &[u8]) -> (u16, String) {
    let text = String::from_utf8_lossy(raw).into_owned();
    let code = text.get(9..12).and_then(|c| c.parse().ok()).unwrap_or(0);
    let body = text.split_once("\r\n\r\n").map_or(String::new(), |(_, b)| b.to_string());
    (code, body)
}

fn json_from(from: Ipv4Addr, web: SocketAddr, path: &str) -> serde_json::Value {
    let (code, body) = get_from(from, web, path, "");
    assert_eq!(code, 200, "{body}");
    serde_json::from_str(&body).unwrap_or_else(|e| panic!("{e}: {body}"))
}

/// Starts a TCP test from `from` that the server transmits; the returned
/// connection keeps it running while the caller holds it.
fn test_from(from: Ipv4Addr, addr: SocketAddr) -> Raw {
    let mut r = Raw::connect_from(from, addr);
    assert_eq!(r.read_n(4), [1, 0, 0, 0]);
    r.send(&tcp_cmd(2, true, 1, 1_000_000));
    assert_eq!(r.read_n(4)[0], 1, "test admitted");
    r
}

fn chromium() -> Option<&'static str> {
    let found = ["chromium", "chromium-browser"].into_iter().find(|c| {
        Command::new(c).arg("--version").stdout(Stdio::null()).stderr(Stdio::null()).status().is_ok_and(|s| s.success())
    });
    if found.is_none() {
        assert!(std::env::var_os("CI").is_none(), "CI must install chromium (.ci/run does)");
        eprintln!("SKIP: chromium is not installed; the browser checks need it (apt install chromium)");
    }
    found
}

/// Loads `url` in headless Chromium for `budget` of page time; returns the
/// DOM, or writes a screenshot when `screenshot` is given.
fn browse(browser: &str, url: &str, budget: Duration, screenshot: Option<&std::path::Path>) -> String {
    let profile = TempDir::new();
    let mut cmd = Command::new(browser);
    cmd.args([
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--window-size=1280,1000",
    ]);
    cmd.arg(format!("--user-data-dir={}", profile.0.display()));
    cmd.arg(format!("--virtual-time-budget={}", budget.as_millis()));
    match screenshot {
        Some(p) => cmd.arg(format!("--screenshot={}", p.display())),
        None => cmd.arg("--dump-dom"),
    };
    cmd.arg(url).stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::null());
    common::die_with_parent(&mut cmd);
    let child = cmd.spawn().unwrap();
    let pid = child.id();
    let killer = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_secs(40));
        // SAFETY: signals only the browser we started, if it still runs.
        unsafe { libc::kill(pid as i32, libc::SIGKILL) };
    });
    let out = child.wait_with_output().unwrap();
    drop(killer);
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The cells of the `<table id=ID>` rows in a dumped DOM.
fn rows(dom: &str, id: &str) -> Vec<Vec<String>> {
    let start = dom.find(&format!("<table id=\"{id}\">")).unwrap_or_else(|| panic!("no table {id} in {dom}"));
    let table = &dom[start..start + dom[start..].find("</table>").unwrap()];
    table
        .split("<tr>")
        .skip(2)
        .map(|r| {
            r.split("<td")
                .skip(1)
                .map(|c| c.split_once('>').unwrap().1.split("</td>").next().unwrap().to_string())
                .collect()
        })
        .collect()
}

fn polyline_points(dom: &str, id: &str) -> Vec<(f64, f64)> {
    let start = dom.find(&format!("<polyline id=\"{id}\"")).expect("chart line");
    let points = dom[start..].split("points=\"").nth(1).unwrap().split('"').next().unwrap();
    points
        .split_whitespace()
        .map(|p| {
            let (x, y) = p.split_once(',').unwrap();
            (x.parse().unwrap(), y.parse().unwrap())
        })
        .collect()
}

#[test]
fn the_operator_page_shows_a_running_test_within_two_seconds_and_charts_it() {
    let Some(browser) = chromium() else { return };
    let s = Server::start(&["--http", "127.0.0.1:0"]);
    let web = s.web_addr();
    let run =
        client_spawn(s.addr, &["--direction", "both", "--duration", "8", "--speed", "30M", "--remote-speed", "20M"]);
    s.wait_log("session 1: ", Duration::from_secs(5));
    std::thread::sleep(Duration::from_millis(1500));
    let dom = browse(browser, &format!("http://{web}/"), Duration::from_secs(2), None);
    let tests = rows(&dom, "tests");
    assert_eq!(tests.len(), 1, "{tests:?}\n{dom}");
    let t = &tests[0];
    assert_eq!((t[0].as_str(), t[3].as_str(), t[4].as_str(), t[5].as_str()), ("1", "tcp", "both", "running"), "{t:?}");
    assert!(t[1].starts_with("127.0.0.1:") && t[7].ends_with("Mbit/s"), "{t:?}");
    let rx = polyline_points(&dom, "rx");
    assert!(rx.len() >= 2, "the chart has a line: {rx:?}");
    assert!(rx.iter().any(|&(_, y)| y < 100.0), "and it rises with the test: {rx:?}");
    assert!(dom.contains("1 test(s) running"), "{dom}");
    let shot = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("web-operator.png");
    let _ = std::fs::remove_file(&shot);
    browse(browser, &format!("http://{web}/"), Duration::from_secs(2), Some(&shot));
    let png = std::fs::read(&shot).unwrap_or_else(|e| panic!("no screenshot {}: {e}", shot.display()));
    assert!(png.starts_with(b"\x89PNG") && png.len() > 10_000, "a real screenshot");
    eprintln!("screenshot: {}", shot.display());
    assert_eq!(client_wait(run).code, 0);
    // Once it ended, it is a recent test, and the live table empties.
    s.wait_log("session 1 ended:", Duration::from_secs(5));
    let dom = browse(browser, &format!("http://{web}/"), Duration::from_secs(2), None);
    assert!(rows(&dom, "tests")[0].iter().any(|c| c == "none"), "{dom}");
    let recent = rows(&dom, "recent");
    assert!(recent[0].contains(&"peer-closed".to_string()) && recent[0].contains(&"both".to_string()), "{recent:?}");
}

#[test]
fn a_visitor_sees_only_its_own_address() {
    let s = Server::start(&["--http", "127.0.0.1:0", "--http-visitors", "--http-allow", "10.99.0.0/16"]);
    let web = s.web_addr();
    let a = Ipv4Addr::new(127, 0, 0, 2);
    let b = Ipv4Addr::new(127, 0, 0, 3);
    let _ta = test_from(a, s.addr);
    let _tb = test_from(b, s.addr);
    s.wait_log("session 2: ", Duration::from_secs(5));
    for (me, other) in [(a, b), (b, a)] {
        let (code, body) = get_from(me, web, "/api/status", "");
        assert_eq!(code, 200, "{body}");
        assert!(!body.contains(&other.to_string()), "{me} sees nothing of {other}: {body}");
        let v: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(v["mode"], "visitor");
        assert_eq!(v["address"], me.to_string());
        let tests = v["tests"].as_array().unwrap();
        assert_eq!(tests.len(), 1, "{v}");
        assert_eq!(tests[0]["peer_ip"], me.to_string());
        assert!(v["usage"]["day"].is_array() && v.get("history").is_none() && v.get("refused").is_none(), "{v}");
        assert_eq!(get_from(me, web, "/metrics", "").0, 403, "metrics are for operators");
    }
    // The page itself, in a browser connecting from 127.0.0.1 with a test of its own.
    if let Some(browser) = chromium() {
        let mine = client_spawn(s.addr, &["--direction", "receive", "--duration", "6", "--remote-speed", "5M"]);
        s.wait_log("session 3: ", Duration::from_secs(5));
        std::thread::sleep(Duration::from_millis(1200));
        let dom = browse(browser, &format!("http://{web}/"), Duration::from_secs(2), None);
        assert!(dom.contains("Your address: 127.0.0.1"), "{dom}");
        let tests = rows(&dom, "tests");
        assert_eq!(tests.len(), 1, "{tests:?}");
        assert!(tests[0][1].starts_with("127.0.0.1:"), "{tests:?}");
        assert!(!dom.contains("127.0.0.2") && !dom.contains("127.0.0.3"), "no other address: {dom}");
        assert!(dom.contains("id=\"chartbox\" hidden"), "no server-wide chart for visitors");
        let shot = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("web-visitor.png");
        browse(browser, &format!("http://{web}/"), Duration::from_secs(2), Some(&shot));
        assert!(std::fs::metadata(&shot).is_ok_and(|m| m.len() > 5_000), "visitor screenshot");
        assert_eq!(client_wait(mine).code, 0);
    }
    // Without --http-visitors, others are refused; a token makes anyone an operator.
    let dir = TempDir::new();
    let tok = dir.path("token");
    std::fs::write(&tok, "s3cret-token-0123456789\n").unwrap();
    let private = Server::start(&["--http", "127.0.0.1:0", "--http-allow", "10.99.0.0/16", "--http-token-file", &tok]);
    let pweb = private.web_addr();
    assert_eq!(get_from(a, pweb, "/api/status", "").0, 403);
    assert_eq!(get_from(a, pweb, "/api/status?token=wrong-token-0123456789", "").0, 403);
    let v = json_from(a, pweb, "/api/status?token=s3cret-token-0123456789");
    assert_eq!(v["mode"], "operator");
    let (code, body) = get_from(a, pweb, "/metrics", "Authorization: Bearer s3cret-token-0123456789\r\n");
    assert_eq!(code, 200);
    assert!(body.contains("btestd_sessions_active{proto=\"tcp\"} 0"), "{body}");
}

#[test]
fn requests_over_the_limits_are_refused_without_disturbing_a_running_test() {
    let s = Server::start(&["--http", "127.0.0.1:0"]);
    let web = s.web_addr();
    let run = client_spawn(s.addr, &["--direction", "receive", "--duration", "5", "--remote-speed", "40M"]);
    s.wait_log("session 1: ", Duration::from_secs(5));
    let me = Ipv4Addr::new(127, 0, 0, 4);
    let huge = format!("X-Pad: {}\r\n", "a".repeat(5000));
    assert_eq!(get_from(me, web, "/", &huge).0, 413);
    assert_eq!(get_from(Ipv4Addr::new(127, 0, 0, 5), web, "/", &"A: b\r\n".repeat(30)).0, 431);
    let mut post = Raw::connect_from(Ipv4Addr::new(127, 0, 0, 6), web);
    post.send(b"POST /api/status HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n");
    assert_eq!(parse_response(&post.read_to_close(Duration::from_secs(5)).0).0, 405);
    let mut junk = Raw::connect_from(Ipv4Addr::new(127, 0, 0, 7), web);
    junk.send(b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03garbage\r\n\r\n");
    assert_eq!(parse_response(&junk.read_to_close(Duration::from_secs(5)).0).0, 400);
    // Silent connections: four per address are held, the fifth is refused at once...
    let from = Ipv4Addr::new(127, 0, 0, 8);
    let silent: Vec<Raw> = (0..4).map(|_| Raw::connect_from(from, web)).collect();
    std::thread::sleep(Duration::from_millis(200));
    let mut fifth = Raw::connect_from(from, web);
    assert_eq!(parse_response(&fifth.read_to_close(Duration::from_secs(5)).0).0, 503);
    // ...and each is closed at its deadline.
    let started = Instant::now();
    for mut c in silent {
        let (got, closed) = c.read_to_close(Duration::from_secs(10));
        assert!(closed && got.is_empty(), "closed without an answer");
    }
    assert!(started.elapsed() < Duration::from_secs(7), "within the 5 s deadline: {:?}", started.elapsed());
    // A burst from one address past its allowance meets 429.
    let rater = Ipv4Addr::new(127, 0, 0, 9);
    let codes: Vec<u16> = (0..16).map(|_| get_from(rater, web, "/api/status", "").0).collect();
    assert!(codes[..8].iter().all(|&c| c == 200), "{codes:?}");
    assert!(codes.contains(&429), "{codes:?}");
    let result = client_wait(run);
    assert_eq!(result.code, 0, "{}", result.stderr);
    assert!(result.rx_bytes > 40_000_000 / 8 * 4 * 8 / 10, "the test kept its rate: {} bytes", result.rx_bytes);
    assert_eq!(get_from(Ipv4Addr::new(127, 0, 0, 10), web, "/", "").0, 200, "the page still answers");
    assert_eq!(get_from(Ipv4Addr::new(127, 0, 0, 10), web, "/nope", "").0, 404);
    // A plain std TCP client can read the whole page.
    let mut c = TcpStream::connect(web).unwrap();
    c.write_all(b"GET / HTTP/1.0\r\n\r\n").unwrap();
    let mut page = String::new();
    c.read_to_string(&mut page).unwrap();
    assert!(page.starts_with("HTTP/1.1 200 OK\r\n") && page.ends_with("</html>\n"), "{page}");
    assert!(page.len() < 30_000, "the page is small: {} bytes", page.len());
}
