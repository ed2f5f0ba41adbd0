#!/usr/bin/env bash
# Build spool as one executable file with Bun, then use it on a "machine" with nothing but
# that file: PATH holds only the binary and HOME is a fresh folder, so the embedded kernel
# library is extracted to $HOME/.cache/spool/kernels/<sha256>/ on first use.
#
#   bash examples/compiled_binary.sh            # build dist/spool-<os>-<arch>, run the demo
#   SPOOL_BIN=path/to/spool bash examples/...   # use a binary you already have
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
export PATH="$root/node_modules/.bin:$PATH"

case "$(uname -s)-$(uname -m)" in
  Linux-x86_64) target=linux-x64 ;;
  Linux-aarch64) target=linux-arm64 ;;
  Darwin-arm64) target=darwin-arm64 ;;
  *) echo "unsupported platform $(uname -s)-$(uname -m)" >&2; exit 1 ;;
esac

bin="${SPOOL_BIN:-}"
if [ -z "$bin" ]; then
  # Also: `deno task compile:bun` builds linux-x64, linux-arm64 and darwin-arm64 at once.
  deno run -A scripts/compile.ts bun --target "$target"
  bin="$root/dist/spool-$target"
fi

scratch="$(mktemp -d)"
trap 'rm -rf "$scratch"' EXIT
mkdir -p "$scratch/bin" "$scratch/home"
cp "$bin" "$scratch/bin/spool"
echo "--- $(du -h "$scratch/bin/spool" | cut -f1) binary; PATH=$scratch/bin, HOME=$scratch/home"

# Nothing else on PATH: no deno, bun or node.
clean() { env -i PATH="$scratch/bin" HOME="$scratch/home" "$@"; }
clean spool --version
clean spool demo
clean spool run "$scratch/home/.cache/spool/demo/spool-demo-qwen3moe-q4k.gguf" \
  -p "Once upon a time" -n 16 --temp 0
echo "--- kernels extracted to:"
ls "$scratch/home/.cache/spool/kernels/"*/*
