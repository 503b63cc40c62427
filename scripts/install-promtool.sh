#!/usr/bin/env bash
# Unpacks promtool from Debian's prometheus package into target/promtool (once), for the rule
# checks of tests/deploy.rs, and prints its path on stdout; everything else goes to stderr.
# Only the package's files are unpacked: nothing is installed and no service starts.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
dir="$root/target/promtool"
promtool="$dir/usr/bin/promtool"

if [ -x "$promtool" ] && "$promtool" --version >/dev/null 2>&1; then
    echo "promtool already unpacked in $dir" >&2
else
    rm -rf "$dir"
    mkdir -p "$dir"
    cd "$dir"
    echo "downloading Debian's prometheus package for promtool" >&2
    apt-get download prometheus >&2 2>/dev/null || { apt-get update -qq >&2 && apt-get download prometheus >&2; }
    dpkg-deb -x prometheus_*.deb . >&2
    rm -f prometheus_*.deb
fi

echo "$promtool"
