//! Sets `BTESTD_GIT_REV` (short commit, or "unknown" outside a git checkout) for `btestd --version`.
//!
//! Never fails the build: no git, no `.git`, or a release tarball all give
//! "unknown"; a packager can pass the revision in `BTESTD_GIT_REV`. Reruns
//! only when HEAD or the branch it names moves, not on every build.

use std::env;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-env-changed=BTESTD_GIT_REV");

    let manifest_dir = PathBuf::from(env::var_os("CARGO_MANIFEST_DIR").unwrap_or_default());
    let git_dir = find_git_dir(&manifest_dir);
    if let Some(git_dir) = &git_dir {
        watch_head(git_dir);
    }

    let rev = env::var("BTESTD_GIT_REV")
        .ok()
        .filter(|r| !r.trim().is_empty())
        .or_else(|| git_dir.as_deref().and_then(git_short_rev))
        .unwrap_or_else(|| "unknown".to_owned());
    println!("cargo:rustc-env=BTESTD_GIT_REV={rev}");
}

/// The checkout's git directory: `.git` itself, or where a `.git` file
/// (worktree, submodule) points. Only this crate's own `.git` counts, so a
/// tarball unpacked inside another repository (an OpenWrt tree) is "unknown".
fn find_git_dir(manifest_dir: &Path) -> Option<PathBuf> {
    let dot_git = manifest_dir.join(".git");
    if dot_git.is_dir() {
        return Some(dot_git);
    }
    let text = fs::read_to_string(&dot_git).ok()?;
    let target = text.strip_prefix("gitdir:")?.trim();
    Some(manifest_dir.join(target)).filter(|dir| dir.is_dir())
}

/// Asks cargo to rerun when HEAD or the branch it names moves.
fn watch_head(git_dir: &Path) {
    let head = git_dir.join("HEAD");
    watch(&head);
    let Some(branch) = fs::read_to_string(&head).ok().and_then(|h| h.strip_prefix("ref:").map(|r| r.trim().to_owned()))
    else {
        return; // detached: HEAD holds the commit itself
    };
    // Branch refs live in the common directory, which a worktree names in `commondir`.
    let common = match fs::read_to_string(git_dir.join("commondir")) {
        Ok(rel) => git_dir.join(rel.trim()),
        Err(_) => git_dir.to_path_buf(),
    };
    let loose = common.join(&branch);
    if loose.is_file() {
        watch(&loose);
    } else if let Some(parent) = loose.parent().filter(|p| p.is_dir()) {
        // A packed ref becomes a loose file on the next commit.
        watch(parent);
    }
    watch(&common.join("packed-refs"));
}

/// rerun-if-changed on a missing path would rerun every build, so only existing ones.
fn watch(path: &Path) {
    if path.exists() {
        println!("cargo:rerun-if-changed={}", path.display());
    }
}

fn git_short_rev(git_dir: &Path) -> Option<String> {
    let out =
        Command::new("git").arg("--git-dir").arg(git_dir).args(["rev-parse", "--short=10", "HEAD"]).output().ok()?;
    let rev = String::from_utf8(out.stdout).ok()?;
    let rev = rev.trim();
    (out.status.success() && !rev.is_empty() && rev.bytes().all(|b| b.is_ascii_hexdigit())).then(|| rev.to_owned())
}
