//! The server's local time zone, read by btestd itself: a static musl
//! binary has no C library that reads OpenWrt's /etc/TZ, and quota periods
//! in "local" time must not silently become UTC.
//!
//! Sources, first found wins: the `TZ` environment variable (a POSIX TZ
//! string, `:/path/to/tzif` or `:Zone/Name` under /usr/share/zoneinfo),
//! then /etc/TZ (a POSIX TZ string, OpenWrt), then /etc/localtime (TZif);
//! none of them means UTC. Read once, at first use.

pub mod posix;
pub mod tzif;

use posix::PosixTz;
use std::ffi::OsString;
use std::fmt;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::sync::OnceLock;
use tzif::Tzif;

/// Why a time zone description could not be used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TzError {
    Posix(&'static str),
    Tzif(&'static str),
    /// A file that is missing or cannot be read.
    Unreadable,
}

impl fmt::Display for TzError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TzError::Posix(why) => {
                write!(f, "not a POSIX TZ string ({why}); write it like CET-1CEST,M3.5.0,M10.5.0/3")
            }
            TzError::Tzif(why) => write!(f, "not a usable TZif file ({why})"),
            TzError::Unreadable => f.write_str("the file it names cannot be read"),
        }
    }
}

/// A local time zone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LocalZone {
    Utc,
    Posix(PosixTz),
    Tzif(Tzif),
}

impl LocalZone {
    /// Seconds east of UTC at `unix`.
    pub fn offset_at(&self, unix: i64) -> i32 {
        match self {
            LocalZone::Utc => 0,
            LocalZone::Posix(p) => p.offset_at(unix),
            LocalZone::Tzif(t) => t.offset_at(unix),
        }
    }
}

const ZONEINFO: &str = "/usr/share/zoneinfo";

/// A TZif zone from a file's bytes, if it could be read.
fn tzif(bytes: Option<Vec<u8>>) -> Result<LocalZone, TzError> {
    Tzif::parse(&bytes.ok_or(TzError::Unreadable)?).map(LocalZone::Tzif)
}

/// The zone a `TZ` value names. As in musl, a file is meant by a leading
/// colon or by a `/` before any comma (`Europe/Berlin`, the usual value in
/// containers); anything else is a POSIX rule. (`join` keeps an absolute
/// path as it is.)
fn from_tz_value(v: &[u8], read: &dyn Fn(&Path) -> Option<Vec<u8>>) -> Result<LocalZone, TzError> {
    if v.is_empty() {
        return Ok(LocalZone::Utc);
    }
    let before_comma = v.split(|&c| c == b',').next().unwrap_or_default();
    let file = v.strip_prefix(b":").or_else(|| before_comma.contains(&b'/').then_some(v));
    if let Some(path) = file {
        let path = Path::new(std::ffi::OsStr::from_bytes(path));
        return tzif(read(&Path::new(ZONEINFO).join(path)));
    }
    PosixTz::parse(v).map(LocalZone::Posix)
}

/// A source that was there but could not be used (it is skipped).
pub type Problem = (&'static str, TzError);

/// Picks the zone from `TZ` (`env`), /etc/TZ and /etc/localtime, reading
/// files with `read`; also says where it came from, and what was wrong
/// with the sources skipped.
pub fn select(
    env: Option<OsString>,
    read: &dyn Fn(&Path) -> Option<Vec<u8>>,
) -> (LocalZone, &'static str, Vec<Problem>) {
    let mut problems = Vec::new();
    if let Some(v) = env {
        match from_tz_value(v.as_bytes(), read) {
            Ok(z) => return (z, "the TZ environment variable", problems),
            Err(e) => problems.push(("TZ", e)),
        }
    }
    if let Some(b) = read(Path::new("/etc/TZ")) {
        let line = b.split(|&c| c == b'\n').next().unwrap_or_default().trim_ascii();
        match PosixTz::parse(line) {
            Ok(p) => return (LocalZone::Posix(p), "/etc/TZ", problems),
            Err(e) => problems.push(("/etc/TZ", e)),
        }
    }
    match tzif(read(Path::new("/etc/localtime"))) {
        Ok(z) => return (z, "/etc/localtime", problems),
        Err(TzError::Unreadable) => {}
        Err(e) => problems.push(("/etc/localtime", e)),
    }
    (LocalZone::Utc, "no TZ, /etc/TZ or /etc/localtime: UTC", problems)
}

static LOCAL: OnceLock<LocalZone> = OnceLock::new();

/// The process's local zone, read from the environment and files once.
pub fn local() -> &'static LocalZone {
    LOCAL.get_or_init(|| {
        let read = |p: &Path| std::fs::read(p).ok();
        let (zone, from, problems) = select(std::env::var_os("TZ"), &read);
        for (source, e) in problems {
            log::warn!("time zone: {source}: {e}; ignoring it");
        }
        log::info!("local time for quota periods from {from}");
        zone
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;
    use std::path::PathBuf;

    fn files(list: &[(&str, Vec<u8>)]) -> impl Fn(&Path) -> Option<Vec<u8>> + use<> {
        let map: HashMap<PathBuf, Vec<u8>> = list.iter().map(|(p, b)| (PathBuf::from(p), b.clone())).collect();
        move |p: &Path| map.get(p).cloned()
    }

    fn posix(s: &str) -> LocalZone {
        LocalZone::Posix(PosixTz::parse(s.as_bytes()).unwrap())
    }

    #[test]
    fn tz_then_etc_tz_then_localtime_then_utc() {
        let localtime = tzif::build(-7200, &[], "<-02>2");
        let all =
            files(&[("/etc/TZ", b"CET-1CEST,M3.5.0,M10.5.0/3\n".to_vec()), ("/etc/localtime", localtime.clone())]);
        let (z, from, _) = select(Some("EST5EDT".into()), &all);
        assert_eq!((z, from), (posix("EST5EDT"), "the TZ environment variable"));
        let (z, from, _) = select(None, &all);
        assert_eq!((z, from), (posix("CET-1CEST,M3.5.0,M10.5.0/3"), "/etc/TZ"));
        let only_localtime = files(&[("/etc/localtime", localtime.clone())]);
        let (z, from, _) = select(None, &only_localtime);
        assert_eq!(from, "/etc/localtime");
        assert_eq!(z.offset_at(0), -7200);
        assert_eq!(select(None, &files(&[])).0, LocalZone::Utc);
        assert_eq!(select(Some("".into()), &all).0, LocalZone::Utc, "an empty TZ is UTC");
    }

    #[test]
    fn tz_names_files_with_a_colon() {
        let f = tzif::build(3600, &[], "CET-1");
        let read = files(&[("/tmp/z", f.clone()), ("/usr/share/zoneinfo/Europe/Paris", f.clone())]);
        assert_eq!(select(Some(":/tmp/z".into()), &read).0.offset_at(0), 3600);
        assert_eq!(select(Some(":Europe/Paris".into()), &read).0.offset_at(0), 3600);
    }

    #[test]
    fn a_slash_before_any_comma_names_a_file_too() {
        let f = tzif::build(3600, &[], "CET-1");
        let read = files(&[("/usr/share/zoneinfo/Europe/Paris", f)]);
        assert_eq!(select(Some("Europe/Paris".into()), &read).0.offset_at(0), 3600, "as containers set it");
        let (z, _, problems) = select(Some("Nowhere/Zone".into()), &read);
        assert_eq!(z, LocalZone::Utc);
        assert!(matches!(problems[0].1, TzError::Unreadable), "a missing file, not a bad rule: {problems:?}");
        let rule = "CET-1CEST,M3.5.0,M10.5.0/3";
        assert!(matches!(select(Some(rule.into()), &read).0, LocalZone::Posix(_)), "a '/' after a comma is a rule's");
    }

    #[test]
    fn a_broken_source_is_reported_and_the_next_one_used() {
        let read = files(&[("/etc/TZ", b"garbage!\n".to_vec()), ("/etc/localtime", b"TZjunk".to_vec())]);
        let (z, _, problems) = select(Some("Nowhere".into()), &read);
        assert_eq!(z, LocalZone::Utc);
        let sources: Vec<&str> = problems.iter().map(|p| p.0).collect();
        assert_eq!(sources, ["TZ", "/etc/TZ", "/etc/localtime"]);
        assert!(matches!(problems[0].1, TzError::Posix(_)), "{problems:?}");
        assert!(problems[1].1.to_string().starts_with("not a POSIX TZ string"), "{problems:?}");
        assert!(matches!(problems[2].1, TzError::Tzif(_)), "{problems:?}");
        let (_, _, problems) = select(Some(":/nowhere".into()), &files(&[]));
        assert_eq!(problems, [("TZ", TzError::Unreadable)], "a missing file named by TZ is reported");
    }
}
