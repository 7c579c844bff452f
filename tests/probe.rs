//! `btestd probe`: the health check of the container image.

mod common;

use common::{BIN, Server};
use std::io::Write;
use std::net::{SocketAddr, TcpListener};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

fn probe(addr: SocketAddr, extra: &[&str]) -> Output {
    Command::new(BIN).arg("probe").arg(addr.to_string()).args(extra).output().expect("run btestd probe")
}

#[test]
fn a_running_server_passes_and_no_test_starts() {
    let server = Server::start(&["--no-db", "-v"]);
    let out = probe(server.addr, &[]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert!(out.stdout.is_empty() && out.stderr.is_empty(), "a passing probe is silent: {out:?}");
    server.wait_log("closed the connection during the handshake (command)", Duration::from_secs(5));
    assert!(!server.log().iter().any(|l| l.contains("session ")), "{:#?}", server.log());
}

#[test]
fn no_server_fails_with_the_reason() {
    let addr = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    let out = probe(addr, &[]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.starts_with(&format!("btestd probe: {addr}: ")), "{err}");
}

#[test]
fn another_service_or_a_silent_one_fails() {
    let other = TcpListener::bind("127.0.0.1:0").unwrap();
    let silent = TcpListener::bind("127.0.0.1:0").unwrap();
    let (other_addr, silent_addr) = (other.local_addr().unwrap(), silent.local_addr().unwrap());
    let t = std::thread::spawn(move || {
        let (mut c, _) = other.accept().unwrap();
        c.write_all(b"SSH-2.0-x\r\n").unwrap();
        // Held open until the probe gave up on the silent one.
        let _held = silent.accept().unwrap();
        std::thread::sleep(Duration::from_millis(1500));
    });
    let out = probe(other_addr, &[]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stderr).contains("not a btest server"), "{out:?}");
    let started = Instant::now();
    let out = probe(silent_addr, &["--timeout", "1"]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stderr).contains("no greeting"), "{out:?}");
    assert!(started.elapsed() < Duration::from_secs(3), "the timeout bounds the probe: {:?}", started.elapsed());
    t.join().unwrap();
}
