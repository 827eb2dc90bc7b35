#!/usr/bin/env bash
# Many concurrent WebSocket sessions through the reference gateway: the generator (its own
# process) holds WS_SESSIONS sessions open for WS_HOLD, one small message every WS_INTERVAL
# each, and reports its memory growth per open session and the message round trips
# (summary.json "websocket"). The gateway and the oracle run as separate processes, so the
# figure is the generator's alone.
set -euo pipefail
cd "$(dirname "$0")/.."
N="${WS_SESSIONS:-2000}"
HOLD="${WS_HOLD:-20s}"
INTERVAL="${WS_INTERVAL:-5s}"
WORK="$(mktemp -d)"
cleanup() { kill $(jobs -p) 2>/dev/null || true; rm -rf "$WORK"; }
trap cleanup EXIT
cargo build --release --quiet
G=./target/release/gauntlet
$G certs init >/dev/null
port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
GW="$(port)"; OR="$(port)"
ROOT="$(pwd)"
cat > "$WORK/ws.yaml" <<YAML
gauntlet: 1
name: ws-sessions
include: ["$ROOT/scenarios/targets/reference.yaml", "$ROOT/scenarios/checks/zt-core.yaml"]
target: { url: "https://127.0.0.1:$GW", ca: "$ROOT/certs/ca.pem", server_name: localhost, protocol: h1, max_in_flight: $N, timeout: 30s }
checks:
  - { id: WS-IDLE, identity: alice, request: { route: api, path: /stream, websocket: { messages: [tick], interval: $INTERVAL, hold: $HOLD } }, expect: allow }
phases:
  - { name: hold, requests: $N, users: $N, mix: [WS-IDLE] }
YAML
$G oracle --listen "127.0.0.1:$OR" --scenario "$WORK/ws.yaml" >/dev/null 2>&1 &
$G gateway --config scenarios/gateway/reference.yaml --listen "127.0.0.1:$GW" --upstream "http://127.0.0.1:$OR" >/dev/null 2>&1 &
sleep 1
/usr/bin/time -v $G run "$WORK/ws.yaml" --headless --out "$WORK/out" 2> "$WORK/time.txt" | grep -E "websocket|requests|verdict" || true
grep -E "Maximum resident|Elapsed|User time|System time" "$WORK/time.txt"
python3 - "$WORK/out/summary.json" <<'PY'
import json, sys
s = json.load(open(sys.argv[1]))
w = s["websocket"]
print(f"sessions {w['sessions']} (at most {w['max_concurrent']} open), messages {w['messages']}, "
      f"rtt p50 {w['message_rtt_ms']['p50']} ms p99 {w['message_rtt_ms']['p99']} ms, "
      f"{w['memory_per_session_kb']} KiB per open session (generator)")
PY
