//! Command-line behaviour an operator sees before any test runs: version,
//! flag values refused with a reason, fractional seconds.

mod common;

use common::*;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Runs btestd to completion; a command that is still running after 5 s
/// (a server that accepted what it should refuse) is killed and fails.
fn run(args: &[&str]) -> (i32, String, String) {
    let mut child = Command::new(BIN).args(args).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            child.kill().unwrap();
            let out = child.wait_with_output().unwrap();
            panic!("btestd {args:?} kept running: {}", String::from_utf8_lossy(&out.stderr));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let out = child.wait_with_output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn version_names_the_release_and_the_revision() {
    let (code, out, _) = run(&["--version"]);
    assert_eq!(code, 0);
    let want = format!("btestd {} (", env!("CARGO_PKG_VERSION"));
    assert!(out.starts_with(&want) && out.trim_end().ends_with(')'), "{out}");
    let rev = &out.trim_end()[want.len()..out.trim_end().len() - 1];
    assert!(!rev.is_empty(), "{out}");
}

#[test]
fn bad_values_stop_the_start_with_a_reason() {
    let dir = TempDir::new();
    let db = dir.db();
    let db = db.to_str().unwrap();
    for (args, reason) in [
        (&["--flush-interval", "0"][..], "--flush-interval must be 1 to 3600 seconds"),
        (&["--flush-interval", "3601"], "--flush-interval must be 1 to 3600 seconds"),
        (&["--persist-interval", "0.5"], "--persist-interval at least 1 second"),
        (&["--flush-interval", "1e3"], "invalid duration '1e3'"),
        (&["--max-memory", "lots"], "invalid amount 'lots'"),
        (&["--max-rate", "-5M"], "invalid rate '-5M'"),
    ] {
        let mut argv = vec!["serve", "--listen", "127.0.0.1:0", "--db", db];
        argv.extend_from_slice(args);
        let (code, _, err) = run(&argv);
        assert_ne!(code, 0, "{args:?} was accepted");
        assert!(err.contains(reason), "{args:?}: {err}");
    }
}

#[test]
fn fractional_seconds_are_honoured() {
    let server = Server::start(&["--flush-interval", "0.25"]);
    let c = client(server.addr, &["--duration", "1.5", "--remote-speed", "8M"]);
    assert_eq!(c.code, 0, "{c:?}");
    assert!((1.4..1.7).contains(&c.seconds), "{c:?}");
    // 8 Mbit/s for 1.5 s is 1.5 MB; the pacer's first burst may add a little.
    assert!((1_300_000..1_800_000).contains(&c.rx_bytes), "{c:?}");
}

/// `btestd usage --help | head -1` and the like: output into a pipe whose
/// reader has gone ends the command as SIGPIPE ends any Unix tool, with no
/// panic message on the terminal.
#[test]
fn a_closed_pipe_ends_a_command_quietly() {
    use std::os::fd::FromRawFd;
    use std::os::unix::process::ExitStatusExt;
    for args in [&["usage", "--help"][..], &["--version"], &["user", "list", "--db", "/nonexistent/x.db"]] {
        let mut fds = [0; 2];
        // SAFETY: fds is a live array of two descriptors for pipe(2) to fill.
        assert_eq!(unsafe { libc::pipe(fds.as_mut_ptr()) }, 0);
        // SAFETY: the read end is ours and closed once: nothing will read.
        unsafe { libc::close(fds[0]) };
        // SAFETY: the write end is ours; Stdio takes it over.
        let stdout = unsafe { Stdio::from_raw_fd(fds[1]) };
        let out = Command::new(BIN).args(args).stdout(stdout).stderr(Stdio::piped()).output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!err.contains("panicked"), "btestd {args:?}: {err}");
        assert_ne!(out.status.code(), Some(101), "btestd {args:?} panicked: {err}");
        if args[0] != "user" {
            assert_eq!(out.status.signal(), Some(libc::SIGPIPE), "btestd {args:?}: {:?} {err}", out.status);
        }
    }
}
