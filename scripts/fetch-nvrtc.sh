#!/usr/bin/env bash
# Fetches a real NVRTC for the compile pipeline's NVRTC test (test/cuda-nvrtc.test.ts), where no CUDA toolkit's
# libnvrtc is installed: CUDA 11.8's libnvrtc and its builtins from Debian bookworm's non-free archive, and the
# libcu++ headers NVRTC compiles the template with (Debian main). The toolkit's cooperative_groups headers come
# from the installed nvcc's toolkit. Unpacked into .nvrtc/ laid out like a CUDA_HOME (lib64/, include/); no
# package is installed. Idempotent; exits 0 without fetching when .nvrtc/ is complete.
#
#   scripts/fetch-nvrtc.sh && CUDA_HOME=$PWD/.nvrtc node --test dist/test/cuda-nvrtc.test.js
set -euo pipefail
source "$(dirname "$0")/lib/debian-archive.sh"
root="$(cd "$(dirname "$0")/.." && pwd)"
dest="$root/.nvrtc"
if [ -f "$dest/lib64/libnvrtc.so.11.2" ] && [ -f "$dest/include/cooperative_groups.h" ]; then exit 0; fi
[ "$(uname -m)" = x86_64 ] || { echo "fetch-nvrtc: only x86_64 packages are fetched" >&2; exit 1; }
toolkit_include="${CUDA_HOME:-/usr/local/cuda}/include"
[ -f "$toolkit_include/cooperative_groups.h" ] || { echo "fetch-nvrtc: no CUDA toolkit headers in $toolkit_include" >&2; exit 1; }

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
debian_archive "$work" "deb http://deb.debian.org/debian bookworm main non-free"
(cd "$work" && apt-get "${apt_options[@]}" download libnvrtc11.2 libnvrtc-builtins11.8 libcu++-dev >/dev/null)
debian_unpack "$work" "$work/root"

rm -rf "$dest"
mkdir -p "$dest/lib64" "$dest/include"
cp -a "$work/root/usr/lib/x86_64-linux-gnu/"libnvrtc* "$dest/lib64/"
cp -a "$work/root/usr/include/cuda" "$work/root/usr/include/nv" "$dest/include/"
cp -a "$toolkit_include/cooperative_groups.h" "$toolkit_include/cooperative_groups" "$dest/include/"
echo "fetch-nvrtc: NVRTC 11.8 and libcu++ in $dest"
