#!/bin/sh
# Installs the Debian packages that building and testing medmoe need, when any is missing.
# Quiet and fast (one dpkg-query) when everything is already there.
# `scripts/deps.sh fuzz` adds what `make fuzz` needs: clang and its sanitizer and libFuzzer runtimes.
set -eu
FUZZ_PKGS=""
[ "${1:-}" = fuzz ] && FUZZ_PKGS="clang libclang-rt-dev"
PKGS="$FUZZ_PKGS build-essential pkg-config libmsgpack-dev libutf8proc-dev libpcre2-dev libjansson-dev
libarchive-dev libmd-dev libcsv-dev libopenblas-dev libcmocka-dev mandoc zip xz-utils zstd time jq libxml2-utils
libopenmpi-dev openmpi-bin"
missing=""
for p in $PKGS; do
	dpkg-query -W -f='${Status}\n' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
[ -z "$missing" ] && exit 0
echo "medmoe: installing Debian packages:$missing" >&2
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO=sudo
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
# shellcheck disable=SC2086
$SUDO apt-get install -y -qq --no-install-recommends $missing >/dev/null
