//! Seeing what the daemon does: `btestd status` over the control socket
//! while real tests run, the socket's permissions, no daemon, misbehaving
//! control clients, and the Prometheus textfile read by a real parser.

mod common;

use common::{BIN, Server, TempDir, admin, client_spawn, client_wait};
use std::io::{Read, Write};
use std::os::unix::fs::MetadataExt;
use std::os::unix::net::UnixStream;
use std::os::unix::process::CommandExt;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

/// Runs `btestd status --control PATH <args>`, bounded in time by the command's own timeouts.
fn status(control: &str, args: &[&str]) -> Output {
    Command::new(BIN).args(["status", "--control", control]).args(args).stdin(Stdio::null()).output().unwrap()
}

fn status_json(control: &str) -> serde_json::Value {
    let o = status(control, &["--format", "json"]);
    assert_eq!(o.status.code(), Some(0), "{}", String::from_utf8_lossy(&o.stderr));
    serde_json::from_slice(&o.stdout).unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&o.stdout)))
}

/// Polls the status until `pred` holds; panics with the last one after `timeout`.
fn wait_status(control: &str, timeout: Duration, pred: impl Fn(&serde_json::Value) -> bool) -> serde_json::Value {
    let deadline = Instant::now() + timeout;
    loop {
        let v = status_json(control);
        if pred(&v) {
            return v;
        }
        assert!(Instant::now() < deadline, "status never matched: {v:#}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn test_of<'a>(v: &'a serde_json::Value, proto: &str) -> Option<&'a serde_json::Value> {
    v["tests"].as_array().unwrap().iter().find(|t| t["protocol"] == proto)
}

#[test]
fn status_shows_running_tcp_and_udp_tests_until_they_end() {
    let s = Server::start(&[]);
    s.wait_log("control socket ", Duration::from_secs(5));
    let ctl = s.control_path();
    let idle = status_json(&ctl);
    assert_eq!(idle["tests"].as_array().unwrap().len(), 0, "{idle:#}");
    assert_eq!(idle["version"], env!("CARGO_PKG_VERSION"));
    let tcp =
        client_spawn(s.addr, &["--direction", "both", "--duration", "4", "--speed", "40M", "--remote-speed", "20M"]);
    let udp =
        client_spawn(s.addr, &["--proto", "udp", "--direction", "receive", "--duration", "4", "--remote-speed", "8M"]);
    // Both rows, running, with rates of the last second near what each side sends.
    let v = wait_status(&ctl, Duration::from_secs(4), |v| {
        let (Some(t), Some(u)) = (test_of(v, "tcp"), test_of(v, "udp")) else { return false };
        t["rx_bps"].as_u64().unwrap() > 20_000_000 && u["tx_bps"].as_u64().unwrap() > 4_000_000
    });
    let t = test_of(&v, "tcp").unwrap();
    assert_eq!(t["direction"], "both");
    assert_eq!(t["phase"], "running");
    assert_eq!(t["peer_ip"], "127.0.0.1");
    assert_eq!((t["connections"].as_u64(), t["connections_wanted"].as_u64()), (Some(1), Some(1)));
    let (rx_bps, tx_bps) = (t["rx_bps"].as_u64().unwrap(), t["tx_bps"].as_u64().unwrap());
    assert!((20_000_000..=60_000_000).contains(&rx_bps), "client sends 40 Mbit/s: {t}");
    assert!((10_000_000..=30_000_000).contains(&tx_bps), "server sends 20 Mbit/s: {t}");
    assert!(t["rx_bytes"].as_u64().unwrap() > 0 && t["tx_bytes"].as_u64().unwrap() > 0);
    assert!(t["user"].is_null() && t["user_budget_left_bytes"].is_null());
    assert!(t["started"].as_str().unwrap().ends_with('Z'));
    let u = test_of(&v, "udp").unwrap();
    assert_eq!(u["direction"], "transmit", "the client receives: the server transmits");
    assert!((4_000_000..=12_000_000).contains(&u["tx_bps"].as_u64().unwrap()), "{u}");
    // The text form: a row per test.
    let text = String::from_utf8(status(&ctl, &[]).stdout).unwrap();
    assert!(text.contains("tests running: 2"), "{text}");
    let rows: Vec<&str> = text.lines().filter(|l| l.contains("127.0.0.1:")).collect();
    assert_eq!(rows.len(), 2, "{text}");
    assert!(rows.iter().any(|r| r.contains(" tcp ") && r.contains(" both ") && r.contains("Mbit/s")), "{text}");
    assert!(rows.iter().any(|r| r.contains(" udp ") && r.contains(" transmit ")), "{text}");
    assert_eq!(client_wait(tcp).code, 0);
    assert_eq!(client_wait(udp).code, 0);
    let after = wait_status(&ctl, Duration::from_secs(5), |v| v["tests"].as_array().unwrap().is_empty());
    assert!(after["rx_bytes_total"].as_u64().unwrap() > 10_000_000, "{after:#}");
    let text = String::from_utf8(status(&ctl, &[]).stdout).unwrap();
    assert!(text.contains("tests running: 0") && !text.contains("127.0.0.1:"), "{text}");
}

/// The budget left for a running test's user and for its address: what is
/// set less what was used, the running test included.
#[test]
fn status_shows_the_budget_left_for_the_user_and_the_address() {
    let dir = TempDir::new();
    let db = dir.path("btestd.db");
    for args in [
        &["user", "add", "alice", "--password", "pw"][..],
        &["quota", "set", "--user", "alice", "--day-total", "1GB"],
        &["quota", "set", "--ip-default", "--week-rx", "500MB"],
    ] {
        let (code, _, err) = admin(&db, args);
        assert_eq!(code, 0, "{args:?}: {err}");
    }
    let s = Server::start(&["--db", &db]);
    s.wait_log("control socket ", Duration::from_secs(5));
    let ctl = dir.path("btestd.control");
    let run = client_spawn(
        s.addr,
        &["--user", "alice", "--password", "pw", "--direction", "receive", "--duration", "4", "--remote-speed", "8M"],
    );
    let v = wait_status(&ctl, Duration::from_secs(4), |v| {
        test_of(v, "tcp").is_some_and(|t| t["tx_bytes"].as_u64().unwrap() > 1_500_000)
    });
    let t = test_of(&v, "tcp").unwrap();
    assert_eq!(t["user"], "alice");
    let moved = t["tx_bytes"].as_u64().unwrap() + t["rx_bytes"].as_u64().unwrap();
    let user_left = t["user_budget_left_bytes"].as_u64().unwrap();
    // Usage is charged once a second: at most about a second's worth behind.
    assert!(user_left < 1_000_000_000 && user_left + moved + 1_500_000 >= 1_000_000_000, "moved {moved}: {t}");
    assert!(user_left + moved <= 1_000_000_000 + 100_000, "never more left than set: {t}");
    // The address's only budget counts what the server receives: nothing here.
    let address_left = t["address_budget_left_bytes"].as_u64().unwrap();
    assert!((499_990_000..=500_000_000).contains(&address_left), "{t}");
    let text = String::from_utf8(status(&ctl, &[]).stdout).unwrap();
    let row = text.lines().find(|l| l.contains(" alice ")).unwrap_or_else(|| panic!("{text}"));
    assert!(row.ends_with("500.0 MB") && row.contains(" MB "), "{row}");
    assert_eq!(client_wait(run).code, 0);
}

#[test]
fn no_daemon_is_a_clear_error_with_its_own_exit_code() {
    let dir = TempDir::new();
    let missing = dir.path("none.control");
    let o = status(&missing, &[]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(3), "{err}");
    assert!(err.contains("no daemon answers at") && err.contains("none.control"), "{err}");
    // A socket file left behind by a daemon that died: nobody listens.
    let stale = dir.path("stale.control");
    drop(std::os::unix::net::UnixListener::bind(&stale).unwrap());
    let o = status(&stale, &["--format", "json"]);
    assert_eq!(o.status.code(), Some(3), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(o.stdout.is_empty());
    // A server started on it replaces the stale socket.
    let s = Server::start(&["--control", &stale]);
    assert_eq!(status(&stale, &[]).status.code(), Some(0));
    // Without the flag, status finds the socket beside the database.
    let o = Command::new(BIN).args(["status", "--db", &s.db()]).output().unwrap();
    assert_eq!(o.status.code(), Some(3), "this server's socket is elsewhere");
    let o = status(&stale, &["--format", "yaml"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stderr).contains("use text, json or prometheus"));
}

#[test]
fn the_default_socket_sits_beside_the_database_and_goes_away_with_the_daemon() {
    let mut s = Server::start(&[]);
    let ctl = s.control_path();
    s.wait_log("control socket ", Duration::from_secs(5));
    let o = Command::new(BIN).args(["status", "--db", &s.db()]).output().unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(String::from_utf8_lossy(&o.stdout).starts_with("btestd "));
    // A second daemon on the same database must not steal a live socket.
    let other = Command::new(BIN)
        .args(["serve", "--listen", "127.0.0.1:0", "--db", &s.db(), "--control", &ctl])
        .stderr(Stdio::piped())
        .output()
        .unwrap();
    assert_eq!(other.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&other.stderr).contains("another btestd answers on it"));
    assert_eq!(status(&ctl, &[]).status.code(), Some(0), "the first daemon still answers");
    s.stop();
    assert!(!std::path::Path::new(&ctl).exists(), "the socket is removed at shutdown");
}

fn as_user(cmd: &mut Command, uid: u32, gid: u32) {
    // SAFETY: setgroups/setgid/setuid are async-signal-safe; only the child changes.
    unsafe {
        cmd.pre_exec(move || {
            if libc::setgroups(0, std::ptr::null()) != 0 || libc::setgid(gid) != 0 || libc::setuid(uid) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
}

#[test]
fn the_socket_is_for_the_service_user_its_group_and_root() {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("SKIP: switching users needs root");
        return;
    }
    let (svc, group) = (65534, 65534);
    let dir = TempDir::new();
    std::os::unix::fs::chown(&dir.0, Some(svc), Some(group)).unwrap();
    let ctl = dir.path("btestd.control");
    let mut serve = Command::new(BIN);
    serve.args(["serve", "--listen", "127.0.0.1:0", "--no-db", "--control", &ctl]);
    serve.stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::null());
    common::die_with_parent(&mut serve);
    as_user(&mut serve, svc, group);
    let mut child = serve.spawn().unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    while !std::path::Path::new(&ctl).exists() {
        assert!(Instant::now() < deadline, "no control socket");
        std::thread::sleep(Duration::from_millis(20));
    }
    let meta = std::fs::metadata(&ctl).unwrap();
    assert_eq!(meta.mode() & 0o777, 0o660, "mode {:o}", meta.mode());
    assert_eq!((meta.uid(), meta.gid()), (svc, group), "owned by the user the daemon runs as");
    let run_as = |uid: u32, gid: u32| {
        let mut c = Command::new(BIN);
        c.args(["status", "--control", &ctl]).stdin(Stdio::null());
        as_user(&mut c, uid, gid);
        c.output().unwrap()
    };
    for (uid, gid) in [(svc, group), (0, 0), (4242, group)] {
        let o = run_as(uid, gid);
        assert_eq!(o.status.code(), Some(0), "uid {uid}: {}", String::from_utf8_lossy(&o.stderr));
        assert!(String::from_utf8_lossy(&o.stdout).contains("tests running: 0"));
    }
    let o = run_as(4242, 4242);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(err.contains("permission denied"), "{err}");
    // SAFETY: signals only the child we started.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    common::wait_bounded(&mut child, Duration::from_secs(10));
}

/// With every control slot held by silent clients, `btestd status` says the
/// daemon is busy (exit 1), not that no daemon answers (exit 3).
#[test]
fn a_full_control_socket_answers_busy() {
    let s = Server::start(&[]);
    s.wait_log("control socket ", Duration::from_secs(5));
    let ctl = s.control_path();
    let _held: Vec<UnixStream> = (0..8).map(|_| UnixStream::connect(&ctl).unwrap()).collect();
    std::thread::sleep(Duration::from_millis(300));
    let o = status(&ctl, &[]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(err.contains("busy, try again"), "{err}");
}

#[test]
fn silent_and_oversized_control_clients_neither_stall_tests_nor_linger() {
    let s = Server::start(&[]);
    s.wait_log("control socket ", Duration::from_secs(5));
    let ctl = s.control_path();
    let test = client_spawn(s.addr, &["--direction", "receive", "--duration", "3", "--remote-speed", "50M"]);
    // A request longer than the limit, then more silent clients than the server serves at once.
    let mut junk = UnixStream::connect(&ctl).unwrap();
    let _ = junk.write_all(&[b'x'; 200]);
    junk.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut reply = String::new();
    let _ = junk.read_to_string(&mut reply);
    assert!(reply.starts_with("error: request longer than 64 bytes"), "{reply:?}");
    let silent: Vec<UnixStream> = (0..12).map(|_| UnixStream::connect(&ctl).unwrap()).collect();
    let started = Instant::now();
    for mut c in silent {
        c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let mut b = Vec::new();
        assert!(c.read_to_end(&mut b).is_ok(), "closed by the server, not left open");
    }
    assert!(started.elapsed() < Duration::from_secs(4), "silent clients are closed after their deadline");
    let run = client_wait(test);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(run.rx_bytes > 50_000_000 / 8 * 2, "the test ran at its rate meanwhile: {} bytes", run.rx_bytes);
    let mut bad = UnixStream::connect(&ctl).unwrap();
    bad.write_all(b"shutdown\n").unwrap();
    let mut reply = String::new();
    bad.read_to_string(&mut reply).unwrap();
    assert!(reply.starts_with("error: unknown request"), "{reply}");
    assert_eq!(status(&ctl, &[]).status.code(), Some(0), "still answering");
    // A last line without its newline, as `printf 'status json' | nc -U` sends it.
    let mut eof = UnixStream::connect(&ctl).unwrap();
    eof.write_all(b"status json").unwrap();
    eof.shutdown(std::net::Shutdown::Write).unwrap();
    eof.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut reply = String::new();
    eof.read_to_string(&mut reply).unwrap();
    let v: serde_json::Value = serde_json::from_str(&reply).unwrap_or_else(|e| panic!("{e}: {reply:?}"));
    assert!(v["tests"].is_array(), "{v:#}");
}

/// Parses Prometheus text with the reference Python client's parser into
/// `name{labels} value` lines sorted; None when the parser is not installed.
fn prometheus_parse(text: &str) -> Option<Vec<String>> {
    const SCRIPT: &str = r#"
import sys
from prometheus_client.parser import text_string_to_metric_families
out = []
for fam in text_string_to_metric_families(sys.stdin.read()):
    assert fam.documentation, fam.name
    for s in fam.samples:
        labels = ",".join(f'{k}="{v}"' for k, v in sorted(s.labels.items()))
        labels = f"{{{labels}}}" if labels else ""
        out.append(f"{fam.type} {s.name}{labels} {s.value:.0f}")
print("\n".join(sorted(out)))
"#;
    let probe = Command::new("python3").args(["-c", "import prometheus_client"]).output();
    if !probe.is_ok_and(|o| o.status.success()) {
        assert!(std::env::var_os("CI").is_none(), "CI must install python3-prometheus-client");
        eprintln!("SKIP: python3 prometheus_client is not installed (apt install python3-prometheus-client)");
        return None;
    }
    let mut child = Command::new("python3")
        .args(["-c", SCRIPT])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(text.as_bytes()).unwrap();
    let o = child.wait_with_output().unwrap();
    assert!(o.status.success(), "the parser rejects:\n{text}\n{}", String::from_utf8_lossy(&o.stderr));
    Some(String::from_utf8(o.stdout).unwrap().lines().map(str::to_string).collect())
}

fn sample(lines: &[String], series: &str) -> u64 {
    let l =
        lines.iter().find(|l| l.split(' ').nth(1) == Some(series)).unwrap_or_else(|| panic!("{series} in {lines:#?}"));
    l.rsplit(' ').next().unwrap().parse().unwrap()
}

#[test]
fn metrics_parse_and_their_counters_move_with_tests_refusals_and_bans() {
    let dir = TempDir::new();
    let prom = dir.path("btestd.prom");
    let s = Server::start(&[
        "--metrics-file",
        &prom,
        "--metrics-interval",
        "1",
        "--max-sessions",
        "1",
        "--user",
        "ann",
        "--password",
        "pw",
        "--auth-fail-limit",
        "2",
        "--auth-ban",
        "60",
        "--auth-scheme",
        "md5",
    ]);
    let read = || loop {
        // Rewritten by rename: never seen half-written.
        if let Ok(t) = std::fs::read_to_string(&prom) {
            return t;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let Some(first) = prometheus_parse(&read()) else { return };
    assert_eq!(sample(&first, "btestd_sessions_active{proto=\"tcp\"}"), 0);
    assert_eq!(sample(&first, "btestd_bytes_total{direction=\"tx\"}"), 0);
    assert_eq!(sample(&first, &format!("btestd_build_info{{version=\"{}\"}}", env!("CARGO_PKG_VERSION"))), 1);
    assert!(first.iter().any(|l| l.starts_with("gauge btestd_process_resident_memory_bytes")), "{first:#?}");
    assert!(first.iter().all(|l| !l.contains("127.0.0.1") && !l.contains("\"ann\"")), "no per-peer labels");
    let auth = ["--user", "ann", "--password", "pw"];
    let mut args = vec!["--direction", "receive", "--duration", "3", "--remote-speed", "20M"];
    args.extend(auth);
    let running = client_spawn(s.addr, &args);
    s.wait_log("session 1: ", Duration::from_secs(5));
    let mut busy = vec!["--duration", "1"];
    busy.extend(auth);
    let refused = client_wait(client_spawn(s.addr, &busy));
    assert_ne!(refused.code, 0, "the server is full");
    let live = wait_for(&read, |l| sample(l, "btestd_sessions_active{proto=\"tcp\"}") == 1);
    assert_eq!(sample(&live, "btestd_refused_total{reason=\"server-full\"}"), 1);
    assert_eq!(client_wait(running).code, 0);
    for _ in 0..2 {
        let wrong = client_wait(client_spawn(s.addr, &["--user", "ann", "--password", "nope", "--duration", "1"]));
        assert_ne!(wrong.code, 0);
    }
    s.wait_log("banned for 60 s", Duration::from_secs(5));
    let _ = client_wait(client_spawn(s.addr, &["--duration", "1"]));
    let done = wait_for(&read, |l| {
        sample(l, "btestd_refused_total{reason=\"banned\"}") == 1
            && sample(l, "btestd_sessions_active{proto=\"tcp\"}") == 0
    });
    assert_eq!(sample(&done, "btestd_sessions_total{direction=\"transmit\",proto=\"tcp\",result=\"peer-closed\"}"), 1);
    assert!(sample(&done, "btestd_bytes_total{direction=\"tx\"}") > 20_000_000 / 8 * 2, "{done:#?}");
    assert_eq!(sample(&done, "btestd_auth_failures_total"), 2);
    assert_eq!(sample(&done, "btestd_bans_total"), 1);
    assert_eq!(sample(&done, "btestd_bans_active"), 1);
    assert!(done.iter().any(|l| l.starts_with("counter btestd_refused_total")), "typed as counters: {done:#?}");
    // The same exposition on demand through the control socket.
    let o = status(&s.control_path(), &["--format", "prometheus"]);
    let on_demand = prometheus_parse(&String::from_utf8(o.stdout).unwrap()).unwrap();
    assert_eq!(sample(&on_demand, "btestd_bans_total"), 1);
    let status_text = String::from_utf8(status(&s.control_path(), &[]).stdout).unwrap();
    assert!(status_text.contains("refused: 2 (banned 1, server-full 1)\n"), "{status_text}");
    assert!(status_text.contains("failed logins: 2, bans started: 1, bans active: 1"), "{status_text}");
}

fn wait_for(read: &impl Fn() -> String, pred: impl Fn(&[String]) -> bool) -> Vec<String> {
    let deadline = Instant::now() + Duration::from_secs(8);
    loop {
        let lines = prometheus_parse(&read()).unwrap();
        if pred(&lines) {
            return lines;
        }
        assert!(Instant::now() < deadline, "metrics never matched: {lines:#?}");
        std::thread::sleep(Duration::from_millis(200));
    }
}
