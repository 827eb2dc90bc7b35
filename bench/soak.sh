#!/usr/bin/env bash
# Soak: gauntlet's memory stays flat over a long open-loop run. 2,000 req/s for 10 minutes
# (SOAK_RATE, SOAK_SECONDS to change) against a loopback nginx from the system packages,
# HTTP/1.1 keep-alive; prints gauntlet's RSS every 10 s (SOAK_EVERY) and, at the end, the
# series' first, last, lowest and highest values and the growth from the first minute's
# median to the last minute's median. Exit 0 when the run completed and passed; the memory
# figures are printed for a human (or a CI log) to read, not asserted.
#
#   bench/soak.sh                       # 10 min at 2,000 req/s
#   SOAK_SECONDS=120 SOAK_RATE=200 bench/soak.sh
#
# Installs nginx (nginx-light) when it is missing (root + apt-get). Loopback only; bounded
# by the phase duration plus 60 s.
set -euo pipefail
cd "$(dirname "$0")/.."
SECS="${SOAK_SECONDS:-600}"
RATE="${SOAK_RATE:-2000}"
EVERY="${SOAK_EVERY:-10}"
WORK="$(mktemp -d)"
trap 'kill "$(cat "$WORK/nginx.pid" 2>/dev/null)" 2>/dev/null || true; rm -rf "$WORK"' EXIT

if ! command -v nginx >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "soak: installing nginx from the system packages" >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nginx-light >/dev/null 2>&1 \
      || DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nginx >/dev/null
  else
    echo "soak: NOT RUN — nginx is missing (install the nginx package, or run as root with apt-get)" >&2
    exit 2
  fi
fi
G="${GAUNTLET:-}"
if [ -z "$G" ]; then
  cargo build --release --quiet
  G=./target/release/gauntlet
fi

# shellcheck source=nginx.sh
. bench/nginx.sh
start_nginx "$WORK"

cat > "$WORK/soak.yaml" <<YAML
gauntlet: 1
name: soak
target: { url: "http://127.0.0.1:$PORT", protocol: h1, max_in_flight: 64, timeout: 5s }
identities: { anon: {} }
checks: [ { id: GET, identity: anon, request: { path: / }, expect: allow } ]
phases: [ { name: soak, duration: ${SECS}s, rate: ${RATE}/s } ]
YAML

echo "soak: ${RATE} req/s for ${SECS}s against nginx on 127.0.0.1:$PORT; RSS of gauntlet every ${EVERY}s" >&2
timeout "$((SECS + 60))" "$G" run "$WORK/soak.yaml" --headless --out "$WORK/out" >"$WORK/run.log" 2>&1 &
pid=$!
: > "$WORK/rss"
t=0
while kill -0 "$pid" 2>/dev/null; do
  sleep "$EVERY"
  t=$((t + EVERY))
  # The generator itself (timeout's child), not the timeout wrapper.
  child="$(pgrep -P "$pid" -x gauntlet || true)"
  [ -n "$child" ] || continue
  kb="$(awk '/^VmRSS:/ {print $2}' "/proc/$child/status" 2>/dev/null || true)"
  [ -n "$kb" ] || continue
  echo "$t $kb" >> "$WORK/rss"
  printf 'soak: t=%4ss rss=%6.1f MB\n' "$t" "$(echo "$kb" | awk '{print $1/1024}')"
done
rc=0
wait "$pid" || rc=$?
python3 - "$WORK/rss" "$WORK/out/summary.json" "$EVERY" <<'PY'
import json, statistics, sys
rows = [tuple(map(int, l.split())) for l in open(sys.argv[1]) if l.strip()]
every = int(sys.argv[3])
try:
    s = json.load(open(sys.argv[2]))
    print(f"soak: {s['requests']['sent']} sent, {s['requests']['completed']} completed, "
          f"{s['requests']['errors']} errors, verdict {s['verdict']}")
except Exception as e:
    print(f"soak: no summary ({e})")
if not rows:
    print("soak: no RSS samples"); sys.exit(0)
mb = [kb / 1024 for _, kb in rows]
per_min = max(1, 60 // every)
first, last = statistics.median(mb[:per_min]), statistics.median(mb[-per_min:])
print(f"soak: RSS series (MB): {' '.join(f'{m:.1f}' for m in mb)}")
print(f"soak: RSS first {mb[0]:.1f} MB, last {mb[-1]:.1f} MB, min {min(mb):.1f}, max {max(mb):.1f}; "
      f"median of the first minute {first:.1f} → last minute {last:.1f} MB ({last - first:+.1f} MB)")
PY
tail -3 "$WORK/run.log" >&2
exit "$rc"
