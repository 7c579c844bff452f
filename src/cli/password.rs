//! Passwords for `user add` and `user set`: from an option, a file or
//! standard input. Only an interactive terminal gets a prompt and echo
//! turned off; a file or a pipe is read as it is, with no tty needed.

use std::io::BufRead;
use std::path::{Path, PathBuf};

/// The password given by `--password` or `--password-file`, if any; both
/// at once is a mistake rather than a precedence rule to remember.
pub(super) fn password_from(password: &Option<String>, file: &Option<PathBuf>) -> Result<Option<String>, String> {
    match (password, file) {
        (Some(_), Some(_)) => Err("give --password or --password-file, not both".into()),
        (Some(p), None) => Ok(Some(p.clone())),
        (None, Some(f)) => read_password(f).map(Some),
        (None, None) => Ok(None),
    }
}

/// Reads the first line of a file, or of standard input for `-` (without
/// echo when it is a terminal).
fn read_password(file: &Path) -> Result<String, String> {
    let mut line = String::new();
    if file == Path::new("-") {
        let echo = EchoOff::new();
        if echo.is_some() {
            eprint!("Password: ");
        }
        let n = std::io::stdin().lock().read_line(&mut line).map_err(|e| format!("cannot read the password: {e}"))?;
        if echo.is_some() {
            eprintln!();
        }
        if n == 0 {
            // A GUI that failed to send the password must not create a user without one.
            return Err("standard input ended before a password line; send the password and a newline".into());
        }
    } else {
        let f =
            std::fs::File::open(file).map_err(|e| format!("cannot read the password file {}: {e}", file.display()))?;
        let n = std::io::BufReader::new(f)
            .read_line(&mut line)
            .map_err(|e| format!("cannot read the password file {}: {e}", file.display()))?;
        if n == 0 {
            return Err(format!("the password file {} is empty", file.display()));
        }
    }
    Ok(line.trim_end_matches(['\n', '\r']).to_string())
}

/// Turns terminal echo off on standard input while alive (None when stdin
/// is not a terminal).
struct EchoOff(libc::termios);

impl EchoOff {
    fn new() -> Option<EchoOff> {
        // SAFETY: isatty only inspects the descriptor.
        if unsafe { libc::isatty(0) } != 1 {
            return None;
        }
        // SAFETY: termios is plain data; tcgetattr fills it for fd 0.
        let mut t: libc::termios = unsafe { std::mem::zeroed() };
        // SAFETY: `t` is a valid, writable termios.
        if unsafe { libc::tcgetattr(0, &mut t) } != 0 {
            return None;
        }
        let saved = t;
        t.c_lflag &= !libc::ECHO;
        // SAFETY: `t` is a termios obtained from tcgetattr.
        unsafe { libc::tcsetattr(0, libc::TCSANOW, &t) };
        Some(EchoOff(saved))
    }
}

impl Drop for EchoOff {
    fn drop(&mut self) {
        // SAFETY: restores the settings read in `new`.
        unsafe { libc::tcsetattr(0, libc::TCSANOW, &self.0) };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_password_file_gives_its_first_line_without_a_terminal() {
        let path = std::env::temp_dir().join(format!("btestd-password-{}", std::process::id()));
        std::fs::write(&path, "s3cret pass\r\nsecond line\n").unwrap();
        let got = password_from(&None, &Some(path.clone()));
        std::fs::remove_file(&path).unwrap();
        assert_eq!(got, Ok(Some("s3cret pass".to_string())));
        assert_eq!(password_from(&Some("pw".into()), &None), Ok(Some("pw".to_string())));
        assert_eq!(password_from(&None, &None), Ok(None));
        assert!(password_from(&Some("pw".into()), &Some(path.clone())).unwrap_err().contains("not both"));
        std::fs::write(&path, "").unwrap();
        let empty = password_from(&None, &Some(path.clone()));
        std::fs::write(&path, "\n").unwrap();
        let blank = password_from(&None, &Some(path.clone()));
        std::fs::remove_file(&path).unwrap();
        assert!(empty.unwrap_err().contains("is empty"), "no line at all is no password");
        assert_eq!(blank, Ok(Some(String::new())), "an empty line is an empty password");
    }
}
