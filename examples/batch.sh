#!/usr/bin/env bash
# An overnight batch job without a server: every request of examples/batch.jsonl (OpenAI
# batch lines), run B at a time expert-major, results written in input order.
#
#   bash examples/batch.sh MODEL.gguf [OUT.jsonl]
#
# Kill it at any point and run it again: it resumes from its store (OUT.jsonl.db) with no
# lost and no duplicated results. On a server instead: `spool serve MODEL` and
# `spool batch submit examples/batch.jsonl`, then `spool batch status|results ID`.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
model="${1:?usage: examples/batch.sh MODEL.gguf [OUT.jsonl]}"
out="${2:-$(mktemp -d)/results.jsonl}"
"$root/spool" batch run "$root/examples/batch.jsonl" --model "$model" --out "$out" --verbose
echo "results: $out"
# one line per request: custom_id and the answer
while IFS= read -r line; do
  echo "$line" | "$root/node_modules/.bin/deno" eval --quiet \
    'const l = JSON.parse(await new Response(Deno.stdin.readable).text()); console.log(l.custom_id + ": " + JSON.stringify(l.response.body.choices[0].message.content))'
done <"$out"
