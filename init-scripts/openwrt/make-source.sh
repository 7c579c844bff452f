#!/bin/sh
# Makes the feed's source tarball: btestd-VERSION.tar.xz with the crates
# vendored (vendor/), reproducibly from a commit, and prints its PKG_HASH.
#
#   init-scripts/openwrt/make-source.sh [COMMIT] [OUTDIR]
#
# COMMIT defaults to HEAD (a release uses its tag), OUTDIR to the current
# directory. Needs git, cargo (network for `cargo vendor`), tar, xz, sha256sum.
set -eu
commit=${1:-HEAD}
out=${2:-.}
repo=$(git -C "$(dirname "$0")" rev-parse --show-toplevel)
version=$(git -C "$repo" show "$commit:Cargo.toml" | sed -n 's/^version *= *"\(.*\)"/\1/p' | head -n 1)
name=btestd-$version
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
git -C "$repo" archive --format=tar --prefix="$name/" "$commit" | tar -x -C "$work"
(cd "$work/$name" && cargo vendor --locked --versioned-dirs vendor >/dev/null)
# The commit's time for every file, sorted names, no owners: the same
# commit always gives the same bytes, so PKG_HASH can be checked by anyone.
mtime=$(git -C "$repo" log -1 --format=%ct "$commit")
tar --sort=name --mtime="@$mtime" --owner=0 --group=0 --numeric-owner \
	--pax-option=exthdr.name=%d/PaxHeaders/%f,delete=atime,delete=ctime \
	-C "$work" -cf - "$name" | xz -9e -T1 >"$out/$name.tar.xz"
echo "$out/$name.tar.xz"
echo "PKG_HASH:=$(sha256sum "$out/$name.tar.xz" | cut -d' ' -f1)"
