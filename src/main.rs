fn main() {
    // A closed pipe (`btestd usage | head`) ends a command quietly, as for
    // any Unix tool, instead of a panic on the failed print. Commands that
    // talk to sockets ignore SIGPIPE again: a peer gone is an error on one
    // socket (splice and sendfile raise the signal), never the end of the process.
    // SAFETY: setting a signal disposition before any thread exists.
    unsafe { libc::signal(libc::SIGPIPE, libc::SIG_DFL) };
    let args: btestd::cli::Args = argh::from_env();
    if args.talks_to_sockets() {
        // SAFETY: as above.
        unsafe { libc::signal(libc::SIGPIPE, libc::SIG_IGN) };
    }
    std::process::exit(btestd::cli::run(args));
}
