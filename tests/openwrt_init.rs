//! The OpenWrt init script without OpenWrt: tests/openwrt/stubs.sh stands
//! in for rc.common, UCI and procd and records what the script asks procd
//! for; these tests hold that record to the exact command line, jail,
//! limits, respawn and firewall settings, for the shipped example config
//! and for one with every option set. The full command line is then run
//! by the real binary, so no flag the script emits is one btestd refuses.

mod common;

use common::*;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

const INIT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/init-scripts/openwrt/btestd.init");
const EXAMPLE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/init-scripts/openwrt/btestd.config");
const STUBS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/openwrt/stubs.sh");

/// What the script asked procd for, line by line.
struct Record(Vec<String>);

impl Record {
    fn of(config: &str, users: &[&str]) -> Record {
        let out =
            Command::new("sh").arg(STUBS).arg(INIT).arg(config).args(users).stdin(Stdio::null()).output().unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        assert!(out.stderr.is_empty(), "the script complained: {}", String::from_utf8_lossy(&out.stderr));
        Record(String::from_utf8(out.stdout).unwrap().lines().map(String::from).collect())
    }

    fn command(&self) -> Vec<&str> {
        self.0.iter().filter_map(|l| l.strip_prefix("arg ")).collect()
    }

    fn with(&self, prefix: &str) -> Vec<&str> {
        self.0.iter().filter(|l| l.starts_with(prefix)).map(String::as_str).collect()
    }
}

/// The zone files that exist here, as the script mounts them.
fn zone_mounts() -> Vec<String> {
    ["/etc/TZ", "/tmp/TZ", "/etc/localtime"]
        .into_iter()
        .filter(|p| Path::new(p).exists())
        .map(|p| format!("mount ro {p}"))
        .collect()
}

fn example_enabled(dir: &TempDir) -> String {
    let text = std::fs::read_to_string(EXAMPLE).unwrap();
    assert!(text.contains("option enabled '0'"), "the example ships disabled");
    let path = dir.path("btestd");
    std::fs::write(&path, text.replace("option enabled '0'", "option enabled '1'")).unwrap();
    path
}

#[test]
fn the_shipped_example_starts_nothing_until_enabled() {
    let r = Record::of(EXAMPLE, &["btestd"]);
    assert!(r.with("instance").is_empty(), "{:?}", r.0);
    assert_eq!(r.0, ["trigger reload btestd"]);
}

#[test]
fn the_shipped_example_enabled_gives_this_exact_service() {
    let dir = TempDir::new();
    let r = Record::of(&example_enabled(&dir), &["btestd"]);
    assert_eq!(r.with("instance"), ["instance main"]);
    #[rustfmt::skip]
    let want = [
        "/usr/bin/btestd", "serve",
        "--listen", "0.0.0.0:2000",
        "--allow", "127.0.0.0/8", "--allow", "10.0.0.0/8", "--allow", "172.16.0.0/12",
        "--allow", "192.168.0.0/16", "--allow", "100.64.0.0/10", "--allow", "::1/128",
        "--allow", "fc00::/7", "--allow", "fe80::/10",
        "--max-sessions", "4", "--max-sessions-per-ip", "2", "--max-duration", "600",
        "--handshake-timeout", "10", "--idle-timeout", "30", "--persist-interval", "3600",
        "--persist", "/etc/btestd/btestd.db", "--syslog",
    ];
    assert_eq!(r.command(), want);
    // No --db: the service and `btestd user add` meet at the binary's default.
    assert!(!r.command().contains(&"--db"));
    assert_eq!(
        r.with("param"),
        [
            "param user btestd",
            "param no_new_privs 1",
            "param limits nofile=4096 4096",
            "param reload_signal HUP",
            "param term_timeout 15",
            "param respawn 3600 5 5",
        ]
    );
    assert_eq!(r.with("jail"), ["jail btestd-main log procfs"]);
    let mut mounts = vec!["mount rw /var/lib/btestd".to_string(), "mount rw /etc/btestd".to_string()];
    mounts.extend(zone_mounts());
    assert_eq!(r.with("mount"), mounts);
    assert!(r.with("json").is_empty(), "no firewall rule unless a zone is set");
    // The package's own directories belong to the daemon, even when the CLI
    // (as root) made them before the first start.
    let chowns = r.with("chown btestd /");
    assert!(
        chowns.contains(&"chown btestd /var/lib/btestd") && chowns.contains(&"chown btestd /etc/btestd"),
        "{chowns:?}"
    );
    assert_eq!(r.0.last().map(String::as_str), Some("trigger reload btestd"));
}

/// A config with every option the script knows, paths under `dir`.
fn full_config(dir: &TempDir) -> (String, String, String) {
    let db = dir.path("ram/btestd.db");
    let persist = dir.path("flash/btestd.db");
    let (ctl, prom, token) = (dir.path("run"), dir.path("prometheus"), dir.path("web-token"));
    let text = format!(
        "config btestd 'lab'
	option enabled '1'
	list listen '127.0.0.1:0'
	list listen '[::1]:0'
	option udp_port_base '31000'
	option udp_port_count '50'
	option udp_io 'portable'
	option db '{db}'
	option persist '{persist}'
	option persist_interval '600'
	option flush_interval '2'
	option user 'btest'
	option password 'change me'
	option auth_scheme 'md5'
	option max_sessions '8'
	option max_sessions_per_ip '3'
	option max_connections '20'
	option max_handshakes '64'
	option max_handshakes_per_ip '4'
	option max_duration '120'
	option max_rate '100M'
	option max_rate_total '500M'
	option max_memory '16MiB'
	option max_socket_memory '8MiB'
	option auth_fail_limit '3'
	option auth_ban '60'
	list allow '127.0.0.0/8'
	list allow '::1/128'
	list deny '127.0.0.9/32'
	list trace '127.0.0.2'
	option handshake_timeout '5'
	option idle_timeout '20'
	option join_timeout '3'
	option nofile '1024'
	option firewall_zone 'wan'
	option verbose '1'
	option quiet '0'
	option syslog '1'
	option control '{ctl}/btestd.control'
	option metrics_file '{prom}/btestd.prom'
	option metrics_interval '5'
	option http '127.0.0.1:0'
	list http_allow '127.0.0.0/8'
	option http_token_file '{token}'
	option http_visitors '1'
"
    );
    let path = dir.path("btestd-full");
    std::fs::write(&path, text).unwrap();
    (path, db, persist)
}

#[test]
fn every_option_reaches_the_command_line_jail_and_firewall() {
    let dir = TempDir::new();
    let (config, db, persist) = full_config(&dir);
    let (control, metrics, token) =
        (dir.path("run/btestd.control"), dir.path("prometheus/btestd.prom"), dir.path("web-token"));
    let r = Record::of(&config, &["btestd"]);
    #[rustfmt::skip]
    let want = vec![
        "/usr/bin/btestd", "serve",
        "--listen", "127.0.0.1:0", "--listen", "[::1]:0",
        "--allow", "127.0.0.0/8", "--allow", "::1/128", "--deny", "127.0.0.9/32", "--trace", "127.0.0.2",
        "--http-allow", "127.0.0.0/8",
        "--udp-port-base", "31000", "--udp-port-count", "50", "--udp-io", "portable", "--auth-scheme", "md5",
        "--max-sessions", "8", "--max-sessions-per-ip", "3", "--max-connections", "20",
        "--max-handshakes", "64", "--max-handshakes-per-ip", "4", "--max-duration", "120",
        "--max-rate", "100M", "--max-rate-total", "500M", "--max-memory", "16MiB", "--max-socket-memory", "8MiB",
        "--auth-fail-limit", "3", "--auth-ban", "60", "--handshake-timeout", "5", "--idle-timeout", "20",
        "--join-timeout", "3", "--flush-interval", "2", "--persist-interval", "600",
        "--metrics-interval", "5", "--http", "127.0.0.1:0",
        "--db", &db, "--persist", &persist,
        "--user", "btest", "--password", "change me",
        "-v", "--syslog", "--http-visitors",
        "--control", &control, "--metrics-file", &metrics, "--http-token-file", &token,
    ];
    assert_eq!(r.command(), want);
    // syslog: procd does not capture the output as well.
    assert_eq!(
        r.with("param"),
        [
            "param user btestd",
            "param no_new_privs 1",
            "param limits nofile=1024 1024",
            "param reload_signal HUP",
            "param term_timeout 15",
            "param respawn 3600 5 5",
        ]
    );
    let ram = db.rsplit_once('/').unwrap().0;
    let flash = persist.rsplit_once('/').unwrap().0;
    let mut mounts = vec![format!("mount rw {ram}"), format!("mount rw {flash}")];
    mounts.push(format!("mount rw {}", dir.path("run")));
    mounts.push(format!("mount rw {}", dir.path("prometheus")));
    mounts.push(format!("mount ro {token}"));
    mounts.extend(zone_mounts());
    assert_eq!(r.with("mount"), mounts);
    // Directories that do not exist are made for the daemon's user.
    assert_eq!(
        r.with("mkdir").into_iter().chain(r.with("chown")).collect::<Vec<_>>(),
        [
            format!("mkdir -p {ram}"),
            format!("mkdir -p {flash}"),
            format!("mkdir -p {}", dir.path("run")),
            format!("mkdir -p {}", dir.path("prometheus")),
            format!("chown btestd {ram}"),
            format!("chown btestd {flash}"),
            format!("chown btestd {}", dir.path("run")),
            format!("chown btestd {}", dir.path("prometheus")),
        ]
    );
    assert_eq!(
        r.with("json"),
        [
            "json open",
            "json array firewall",
            "json object",
            "json type=rule",
            "json name=btestd-lab-tcp",
            "json src=wan",
            "json proto=tcp",
            "json dest_port=0",
            "json target=ACCEPT",
            "json end-object",
            "json object",
            "json type=rule",
            "json name=btestd-lab-udp",
            "json src=wan",
            "json proto=udp",
            "json dest_port=31000-31049",
            "json target=ACCEPT",
            "json end-object",
            "json end-array",
            "json close",
        ]
    );
}

#[test]
fn without_the_account_the_daemon_runs_as_root_and_owns_nothing() {
    let dir = TempDir::new();
    let (config, _, _) = full_config(&dir);
    let r = Record::of(&config, &[]);
    assert!(r.with("param user").is_empty());
    assert!(r.with("chown").is_empty());
    assert_eq!(r.with("mkdir").len(), 4, "database, copy, control socket and metrics directories");
}

#[test]
fn the_firewall_rule_opens_the_first_listen_port_and_the_default_udp_range() {
    let dir = TempDir::new();
    let path = dir.path("btestd");
    std::fs::write(
        &path,
        "config btestd\n\toption enabled 'yes'\n\tlist listen '[::]:2000'\n\tlist listen '0.0.0.0:2100'\n\toption firewall_zone 'wan'\n\toption no_db '1'\n",
    )
    .unwrap();
    let r = Record::of(&path, &["btestd"]);
    assert_eq!(r.with("instance"), ["instance cfg1"]);
    assert!(r.with("json dest_port").contains(&"json dest_port=2000"));
    assert!(r.with("json dest_port").contains(&"json dest_port=2001-3000"));
    assert!(r.command().ends_with(&["--no-db"]), "{:?}", r.command());
    assert!(!r.with("mount").iter().any(|m| m.starts_with("mount rw")), "no database directories without a database");
}

/// The recorded full command line, run by the real binary for a moment:
/// every flag and value the script emits is one `btestd serve` takes.
#[test]
fn the_binary_accepts_the_full_command_line() {
    let dir = TempDir::new();
    let (config, db, persist) = full_config(&dir);
    let r = Record::of(&config, &["btestd"]);
    let args = &r.command()[2..];
    // What the script's mkdir would have made, and the operator's token.
    std::fs::create_dir_all(dir.path("run")).unwrap();
    std::fs::create_dir_all(dir.path("prometheus")).unwrap();
    std::fs::write(dir.path("web-token"), "a-token-of-24-characters\n").unwrap();
    let mut child = Command::new(BIN)
        .args(["serve"])
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(1500));
    let still_running = child.try_wait().unwrap().is_none();
    // SAFETY: signals only the child we started.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let status = wait_bounded(&mut child, Duration::from_secs(10));
    let mut err = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut err).unwrap();
    assert!(still_running, "btestd refused the script's command line: {err}");
    assert!(status.success(), "{err}");
    assert!(Path::new(&db).exists(), "{err}");
    assert!(Path::new(&persist).exists(), "saved at stop: {err}");
    assert!(Path::new(&dir.path("prometheus/btestd.prom")).exists(), "metrics written: {err}");
}

/// The feed's on-target check (test.sh PACKAGE VERSION) passes with this
/// build on PATH as `btestd`, and ignores other packages.
#[test]
fn the_feed_test_script_passes_with_this_binary() {
    let dir = TempDir::new();
    std::os::unix::fs::symlink(BIN, dir.0.join("btestd")).unwrap();
    let path = format!("{}:{}", dir.0.display(), std::env::var("PATH").unwrap_or_default());
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/init-scripts/openwrt/test.sh");
    let version = format!("{}-r1", env!("CARGO_PKG_VERSION"));
    let run = |pkg: &str, version: &str| {
        Command::new("sh").args([script, pkg, version]).env("PATH", &path).stdin(Stdio::null()).output().unwrap()
    };
    let out = run("btestd", &version);
    assert!(out.status.success(), "{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(!run("btestd", "9.9.9-r1").status.success(), "a wrong version fails");
    assert!(run("other-package", "1").status.success());
}

#[test]
fn one_directory_for_both_files_is_mounted_once() {
    let dir = TempDir::new();
    let path = dir.path("btestd");
    let db = dir.path("data/live.db");
    let persist = dir.path("data/copy.db");
    std::fs::write(
        &path,
        format!("config btestd 'one'\n\toption enabled '1'\n\toption db '{db}'\n\toption persist '{persist}'\n"),
    )
    .unwrap();
    let r = Record::of(&path, &["btestd"]);
    let rw = r.with("mount rw");
    assert_eq!(rw, [format!("mount rw {}", dir.path("data"))]);
}
