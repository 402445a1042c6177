#!/usr/bin/env bash
# Fetches a Vulkan driver the WebGPU backend's tests can run on where the machine has no GPU: Mesa 25's lavapipe
# (software Vulkan) from Debian's bookworm-backports, plus the Vulkan loader (libvulkan1) and any other library it
# needs that the system lacks. Debian 12's own lavapipe (Mesa 22.3) is refused by Dawn. Nothing is installed: the
# packages are unpacked into .webgpu/ (git-ignored), laid out as
#   .webgpu/lib/          the shared libraries (libvulkan.so.1, libvulkan_lvp.so, missing dependencies)
#   .webgpu/lvp_icd.json  the driver's manifest, naming ./lib/libvulkan_lvp.so relative to itself
# and selected with RINGKERNEL_WEBGPU_DRIVER_DIR=.webgpu (the backend then preloads lib/ and sets VK_DRIVER_FILES).
# The system's apt sources and libraries are left alone. Idempotent: exits 0 at once when .webgpu/ is complete.
#
#   scripts/fetch-webgpu-driver.sh && RINGKERNEL_WEBGPU_DRIVER_DIR=$PWD/.webgpu node dist/examples/webgpu.js
set -euo pipefail
source "$(dirname "$0")/lib/debian-archive.sh"
root="$(cd "$(dirname "$0")/.." && pwd)"
dest="$root/.webgpu"
if [ -f "$dest/lvp_icd.json" ] && [ -f "$dest/lib/libvulkan_lvp.so" ] && [ -f "$dest/lib/libvulkan.so.1" ]; then exit 0; fi
[ "$(uname -m)" = x86_64 ] || { echo "fetch-webgpu-driver: only x86_64 packages are fetched" >&2; exit 1; }

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
debian_archive "$work" "deb http://deb.debian.org/debian bookworm main" "deb http://deb.debian.org/debian bookworm-backports main"
# What an install would add, against the system's own package status: packages it would newly install (an
# "Inst name (version ...)" line). Upgrades of installed ones ("Inst name [old] (new ...)") are skipped: the
# system's older libraries (libdrm) serve lavapipe, and replacing them is what this script must not do.
mapfile -t wanted < <(apt-get "${apt_options[@]}" -s install --no-install-recommends \
  mesa-vulkan-drivers/bookworm-backports libvulkan1 2>/dev/null |
  awk '$1 == "Inst" && $3 ~ /^\(/ { print $2 }')
[ "${#wanted[@]}" -gt 0 ] || { echo "fetch-webgpu-driver: apt resolved no packages" >&2; exit 1; }
downloads=()
for package in "${wanted[@]}"; do
  if [ "$package" = mesa-vulkan-drivers ]; then downloads+=("mesa-vulkan-drivers/bookworm-backports"); else downloads+=("$package"); fi
done
(cd "$work" && apt-get "${apt_options[@]}" download "${downloads[@]}" >/dev/null)
debian_unpack "$work" "$work/root"

rm -rf "$dest"
mkdir -p "$dest/lib"
# Only shared libraries: the other drivers of the Mesa package (radeon, intel, ...) and the layers are left out.
find "$work/root" \( -path '*/lib/x86_64-linux-gnu/*.so*' -o -path '*/usr/lib/x86_64-linux-gnu/*.so*' \) \
  \( -type f -o -type l \) ! -name 'libvulkan_*' ! -name 'libVkLayer_*' -exec cp -a {} "$dest/lib/" \;
cp -a "$work/root/usr/lib/x86_64-linux-gnu/libvulkan_lvp.so" "$dest/lib/"
api_version="$(sed -n 's/.*"api_version": *"\([^"]*\)".*/\1/p' "$work/root/usr/share/vulkan/icd.d/lvp_icd.json")"
cat >"$dest/lvp_icd.json" <<JSON
{
  "file_format_version": "1.0.0",
  "ICD": { "api_version": "${api_version:-1.4.305}", "library_path": "./lib/libvulkan_lvp.so" }
}
JSON
echo "fetch-webgpu-driver: lavapipe ($(printf '%s ' "${wanted[@]}")) in $dest"
