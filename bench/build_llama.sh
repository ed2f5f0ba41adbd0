#!/usr/bin/env bash
# Builds llama.cpp's llama-bench and llama-batched-bench (CPU, no GPU backends) from the
# source node-llama-cpp ships (llama/gitRelease.bundle) into .cache/ (git-ignored): the
# fair side-by-side tools, which take --no-repack and -ot exps=CPU. Prints the bin folder.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
src="$root/.cache/llama-src"
out="$root/.cache/llama-build"
bundle="$root/node_modules/node-llama-cpp/llama/gitRelease.bundle"
[ -f "$bundle" ] || { echo "no $bundle: run npm install first" >&2; exit 1; }
if [ ! -d "$src/.git" ]; then
  rm -rf "$src"
  git clone -q "$bundle" "$src"
fi
if [ ! -x "$out/bin/llama-bench" ] || [ ! -x "$out/bin/llama-batched-bench" ]; then
  cmake -S "$src" -B "$out" -DCMAKE_BUILD_TYPE=Release -DGGML_NATIVE=ON -DLLAMA_CURL=OFF \
    -DGGML_CUDA=OFF -DGGML_VULKAN=OFF -DGGML_METAL=OFF -DLLAMA_BUILD_TESTS=OFF \
    -DLLAMA_BUILD_SERVER=OFF >&2
  cmake --build "$out" -j "$(nproc)" --target llama-bench llama-batched-bench >&2
fi
echo "$out/bin"
