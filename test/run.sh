#!/usr/bin/env bash
# Runs the whole suite: `deno test` (unit, kernels, parity, e2e), then the Bun leg
# (`bun test test/bun/`), and prints one closing line with the combined counts.
# Extra arguments go to `deno test` (e.g. a path filter).
set -uo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
export PATH="$root/node_modules/.bin:$PATH"
log=$(mktemp -d)
# Test data from a plain clone: llama.cpp's vocab files and templates come from the source
# node-llama-cpp ships (test/_llama_source.ts), unless the env vars point elsewhere.
if [ -z "${SPOOL_VOCAB_DIR:-}" ] || [ -z "${SPOOL_TEMPLATE_DIR:-}" ]; then
  if dirs=$(deno run -A test/_llama_source.ts 2>/dev/null); then
    export $dirs
  else
    echo "test: llama.cpp's source bundle is unavailable; tests that need its vocab files skip or fail"
  fi
fi
deno test -A "$@" 2>&1 | tee "$log/deno.txt"
deno_rc=${PIPESTATUS[0]}
bun_rc=0
if [ $# -eq 0 ]; then
  bun test test/bun/ 2>&1 | tee "$log/bun.txt"
  bun_rc=${PIPESTATUS[0]}
fi
strip() { sed -e 's/\x1b\[[0-9;]*m//g' "$1" 2>/dev/null; }
dp=$(strip "$log/deno.txt" | grep -E '^(ok|FAILED) \|' | tail -1 | sed -nE 's/.* ([0-9]+) passed.*/\1/p')
df=$(strip "$log/deno.txt" | grep -E '^(ok|FAILED) \|' | tail -1 | sed -nE 's/.* ([0-9]+) failed.*/\1/p')
bp=$(strip "$log/bun.txt" | sed -nE 's/^ *([0-9]+) pass$/\1/p' | tail -1)
bf=$(strip "$log/bun.txt" | sed -nE 's/^ *([0-9]+) fail$/\1/p' | tail -1)
passed=$(( ${dp:-0} + ${bp:-0} ))
failed=$(( ${df:-0} + ${bf:-0} ))
rc=0
if [ "$deno_rc" -ne 0 ] || [ "$bun_rc" -ne 0 ]; then
  rc=1
  [ "$failed" -eq 0 ] && failed=1 # a runner crashed without counting
fi
echo "deno: ${dp:-0} passed, ${df:-0} failed; bun: ${bp:-0} passed, ${bf:-0} failed"
echo "$passed passed, $failed failed"
exit $rc
