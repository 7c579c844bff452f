"""Fails unless init-scripts/openwrt/Makefile repeats .cargo/config.toml's LIBSQLITE3_FLAGS.

OpenWrt builds with `cargo install`, which ignores the project's
.cargo/config.toml, so the Makefile carries its own copy of the flags.
Run from the repository root (cross/ci.sh does). Needs Python 3.11+ (tomllib).
"""

import re
import sys
import tomllib

with open(".cargo/config.toml", "rb") as f:
    cargo = tomllib.load(f)["env"]["LIBSQLITE3_FLAGS"].split()
with open("init-scripts/openwrt/Makefile") as f:
    makefile = f.read()
# The variable and its backslash-continued lines.
block = re.search(r"^BTESTD_SQLITE_FLAGS:=((?:.*\\\n)*.*)$", makefile, re.M)
openwrt = block.group(1).replace("\\\n", " ").split() if block else []
if openwrt != cargo:
    sys.exit(
        "LIBSQLITE3_FLAGS differ:\n"
        f"  .cargo/config.toml:          {' '.join(cargo)}\n"
        f"  init-scripts/openwrt/Makefile: {' '.join(openwrt)}"
    )
print(f"{len(cargo)} SQLite flags agree in .cargo/config.toml and init-scripts/openwrt/Makefile")
