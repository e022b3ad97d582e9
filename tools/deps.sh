#!/usr/bin/env bash
# tools/deps.sh [build|bench] -- make sure the Debian packages rtgc needs are
# installed.  As root it installs what is missing; otherwise it prints the
# apt-get line to run and exits 1.
set -euo pipefail
want="${1:-build}"
pkgs=(gcc clang meson ninja-build pkg-config libcriterion-dev)
if [ "$want" = bench ]; then
  pkgs+=(python3 libgc-dev golang-1.19-go libmimalloc-dev libjemalloc-dev gnuplot-nox)
fi
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0
if [ "$(id -u)" = 0 ]; then
  echo "rtgc: installing ${missing[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >&2
  apt-get install -y -qq "${missing[@]}" >&2
else
  echo "rtgc: missing Debian packages; run: sudo apt-get install -y ${missing[*]}" >&2
  exit 1
fi
