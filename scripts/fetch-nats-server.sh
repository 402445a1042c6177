#!/usr/bin/env bash
# Gets a nats-server for the cluster tests, benchmark and demo without changing the system: a nats-server already
# on PATH is used as it is; otherwise Debian bookworm's package (2.9.x, JetStream and KV included) is downloaded
# and unpacked into .nats/ (git-ignored). No package is installed, no apt source is added. Idempotent.
# Prints the binary's path on its last line.
#
#   scripts/fetch-nats-server.sh && node --test dist/test/cluster-*.test.js
set -euo pipefail
source "$(dirname "$0")/lib/debian-archive.sh"
root="$(cd "$(dirname "$0")/.." && pwd)"
dest="$root/.nats"
if [ -x "$dest/nats-server" ]; then echo "$dest/nats-server"; exit 0; fi
if command -v nats-server >/dev/null; then command -v nats-server; exit 0; fi
command -v apt-get >/dev/null || { echo "fetch-nats-server: no apt-get here; install nats-server (https://nats.io) and put it on PATH" >&2; exit 1; }

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
debian_archive "$work" "deb http://deb.debian.org/debian bookworm main"
(cd "$work" && apt-get "${apt_options[@]}" download nats-server >/dev/null)
dpkg-deb -x "$work"/nats-server_*.deb "$work/root"

mkdir -p "$dest"
cp "$work/root/usr/sbin/nats-server" "$dest/nats-server.partial"
mv "$dest/nats-server.partial" "$dest/nats-server"
echo "fetch-nats-server: $("$dest/nats-server" --version) in $dest" >&2
echo "$dest/nats-server"
