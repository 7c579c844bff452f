//! How an admin command's outcome reaches the operator: an error is printed
//! after the command's name and the process exits with 1.

/// What a command failed with; printed after the command's name.
pub(super) type CmdResult = Result<(), String>;

/// Prints `btestd CMD: error` for a failure; returns the exit code.
pub(super) fn finish(cmd: &str, r: CmdResult) -> i32 {
    match r {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("btestd {cmd}: {e}");
            1
        }
    }
}
