#!/usr/bin/env bash
# Runs an apt command against Debian 13 (trixie and trixie-backports,
# whose packages apt takes only when asked: `PKG/trixie-backports`) for riscv64 packages,
# with an apt configuration of its own under STATE (sources, lists,
# cache): downloads only, the host's apt and dpkg stay Debian 12's.
# Lists are fetched on first use and refreshed when a day old.
#
#   scripts/trixie-apt.sh STATE apt-get download PKG...
#   scripts/trixie-apt.sh STATE apt-cache depends linux-image-riscv64
set -euo pipefail
state=$(realpath -m "$1"); shift
mkdir -p "$state/lists/partial" "$state/cache/archives/partial"
printf 'deb http://deb.debian.org/debian %s main\n' trixie trixie-backports > "$state/sources.list"
opts=(-o "Dir::Etc::sourcelist=$state/sources.list" -o "Dir::Etc::sourceparts=-"
      -o "Dir::State::Lists=$state/lists" -o "Dir::Cache=$state/cache"
      -o "Dir::State::status=/dev/null" -o "APT::Architectures::=riscv64"
      -o "APT::Architecture=riscv64" -o "APT::Sandbox::User=root")
if [ -z "$(find "$state/lists" -name '*_Packages*' -mtime -1 2>/dev/null | head -n1)" ]; then
  apt-get "${opts[@]}" update -qq
fi
tool=$1; shift
exec "$tool" "${opts[@]}" "$@"
