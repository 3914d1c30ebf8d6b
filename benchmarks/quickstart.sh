#!/usr/bin/env bash
# Times the README's main command from an empty workdir, then the cached re-apply.
#   benchmarks/quickstart.sh            (after `make install`)
set -euo pipefail
cd "$(dirname "$0")/.."
workdir=$(mktemp -d /tmp/rsrl-quickstart-XXXX)
trap 'rm -rf "$workdir"' EXIT
run() { .venv/bin/rsrl apply specs/quickstart.yaml "workdir=$workdir" > "$workdir.$1.log" 2>&1; }
elapsed() { awk -v a="$1" -v b="$(date +%s.%N)" 'BEGIN { print b - a }'; }
start=$(date +%s.%N); run first; first=$(elapsed "$start")
start=$(date +%s.%N); run cached; cached=$(elapsed "$start")
grep -h "^report:" "$workdir.first.log" || true
printf 'quickstart from an empty workdir: %6.1f s\n' "$first"
printf 'cached re-apply:                  %6.1f s\n' "$cached"
printf 'machine: %s cores, load average %s\n' "$(nproc)" "$(cut -d' ' -f1-3 /proc/loadavg)"
