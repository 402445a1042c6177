#!/usr/bin/env bash
# Fetches Prometheus's own linter, promtool, for the metrics test (test/prometheus-promtool.test.ts): Debian
# bookworm's `prometheus` package is downloaded and unpacked into .promtool/ (nothing is installed, the system's apt
# sources are not touched). Idempotent; exits 0 without fetching when .promtool/promtool runs.
#
#   scripts/fetch-promtool.sh && node --test dist/test/prometheus-promtool.test.js
set -euo pipefail
source "$(dirname "$0")/lib/debian-archive.sh"
root="$(cd "$(dirname "$0")/.." && pwd)"
dest="$root/.promtool"
if [ -x "$dest/promtool" ] && "$dest/promtool" --version >/dev/null 2>&1; then exit 0; fi
arch="$(dpkg --print-architecture 2>/dev/null || true)"
[ -n "$arch" ] || { echo "fetch-promtool: no dpkg here (not Debian): install promtool and put it on PATH" >&2; exit 1; }

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
debian_archive "$work" "deb http://deb.debian.org/debian bookworm main" -- -o "APT::Architecture=$arch"
(cd "$work" && apt-get "${apt_options[@]}" download prometheus >/dev/null)
dpkg-deb -x "$work"/prometheus_*.deb "$work/root"

mkdir -p "$dest"
cp "$work/root/usr/bin/promtool" "$dest/promtool"
"$dest/promtool" --version >/dev/null
echo "fetch-promtool: $("$dest/promtool" --version 2>&1 | head -1) in $dest"
