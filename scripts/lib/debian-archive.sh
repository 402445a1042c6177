# Sourced by the fetch-*.sh scripts: apt pointed at Debian's archive through a private source list, package lists
# and cache under a work folder, so packages can be downloaded and unpacked (never installed) while the system's
# apt configuration is read, never written.
#
#   source "$(dirname "$0")/lib/debian-archive.sh"
#   debian_archive "$work" "deb http://deb.debian.org/debian bookworm main"   # sets apt_options, runs update
#   (cd "$work" && apt-get "${apt_options[@]}" download some-package >/dev/null)
#   debian_unpack "$work" "$work/root"                                         # every downloaded .deb

# debian_archive WORK SOURCE_LINE... [-- EXTRA_APT_OPTION...]: writes WORK/sources.list, sets the global
# `apt_options` array and fetches the package lists.
debian_archive() {
  local work="$1"
  shift
  local sources=() extra=()
  while [ "$#" -gt 0 ] && [ "$1" != -- ]; do sources+=("$1"); shift; done
  [ "$#" -gt 0 ] && shift
  extra=("$@")
  printf '%s\n' "${sources[@]}" >"$work/sources.list"
  mkdir -p "$work/lists/partial" "$work/cache/archives/partial"
  apt_options=(-q -o "Dir::Etc::SourceList=$work/sources.list" -o Dir::Etc::SourceParts=/dev/null
    -o "Dir::State::Lists=$work/lists" -o "Dir::Cache=$work/cache" -o Debug::NoLocking=1
    -o APT::Sandbox::User=root "${extra[@]}")
  apt-get "${apt_options[@]}" update >/dev/null
}

# debian_unpack WORK DEST: unpacks every .deb downloaded into WORK into DEST.
debian_unpack() {
  local deb
  for deb in "$1"/*.deb; do dpkg-deb -x "$deb" "$2"; done
}
