#!/usr/bin/env bash
# Serve a model on loopback and wire OpenCode to it.
#
#   bash examples/server_opencode.sh MODEL.gguf [PORT]
#
# Starts `spool serve`, waits for /health, writes an opencode.json (from
# examples/opencode.json, with this port and model) into $OPENCODE_DIR (default: a temp
# folder), asks the server one question with curl the way OpenCode does (streamed chat
# completion with usage), and prints how to start OpenCode against it. The server stops when
# the script ends (set KEEP=1 to leave it running).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
model="${1:?usage: examples/server_opencode.sh MODEL.gguf [PORT]}"
port="${2:-8080}"
alias="local-model"
dir="${OPENCODE_DIR:-$(mktemp -d)}"

"$root/spool" serve "$model" --port "$port" --alias "$alias" --batch-store off >"$dir/serve.log" 2>&1 &
pid=$!
[ "${KEEP:-0}" = 1 ] || trap 'kill $pid 2>/dev/null; wait $pid 2>/dev/null || true' EXIT
for _ in $(seq 1 300); do
  curl -sf "http://127.0.0.1:$port/health" >/dev/null 2>&1 && break
  kill -0 $pid 2>/dev/null || { cat "$dir/serve.log" >&2; exit 1; }
  sleep 0.2
done
curl -sf "http://127.0.0.1:$port/health"; echo

# OpenCode's provider config: the built-in @ai-sdk/openai-compatible provider, our URL
sed -e "s#http://127.0.0.1:8080/v1#http://127.0.0.1:$port/v1#" \
    -e "s#qwen3-30b-a3b#$alias#g" "$root/examples/opencode.json" >"$dir/opencode.json"
echo "wrote $dir/opencode.json"

# what OpenCode sends: a streamed chat completion with usage in the last chunk
curl -sfN "http://127.0.0.1:$port/v1/chat/completions" \
  -H 'content-type: application/json' \
  -d "{\"model\":\"$alias\",\"stream\":true,\"stream_options\":{\"include_usage\":true},
       \"max_tokens\":8,\"messages\":[{\"role\":\"user\",\"content\":\"Say hello\"}]}"
echo
echo "OpenCode: cd $dir && opencode run --model spool/$alias 'Say hello'"
