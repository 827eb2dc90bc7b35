#!/usr/bin/env bash
# Side-by-side generator benchmark: wrk, oha and gauntlet against the same loopback nginx,
# HTTP/1.1 keep-alive, 64 connections, closed loop, 10 s each (BENCH_SECONDS to change).
# Prints requests/s and requests per CPU-second *of the generator* (user+sys from
# getrusage of the generator process tree). Machines are noisy: compare ratios within one run.
#
# Installs what it needs: wrk and nginx from the system packages, oha with `cargo install`.
set -euo pipefail
cd "$(dirname "$0")/.."
SECS="${BENCH_SECONDS:-10}"
CONNS="${BENCH_CONNECTIONS:-64}"
ROUNDS="${BENCH_ROUNDS:-1}"
WORK="$(mktemp -d)"
trap 'kill "$(cat "$WORK/nginx.pid" 2>/dev/null)" 2>/dev/null || true; rm -rf "$WORK"' EXIT

need_apt() {
  command -v "$1" >/dev/null 2>&1 && return
  echo "bench: installing $2 from the system packages" >&2
  [ -n "${APT_UPDATED:-}" ] || { apt-get update -qq; APT_UPDATED=1; }
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$2" >/dev/null
}
need_apt wrk wrk
need_apt nginx nginx-light
if ! command -v oha >/dev/null 2>&1; then
  echo "bench: installing oha with cargo (takes a while)" >&2
  cargo install oha --locked >/dev/null
fi
cargo build --release --quiet

# shellcheck source=nginx.sh
. bench/nginx.sh
start_nginx "$WORK"

cat > "$WORK/scenario.yaml" <<YAML
gauntlet: 1
name: bench
target: { url: "http://127.0.0.1:$PORT", protocol: h1, max_in_flight: $CONNS, timeout: 10s }
identities: { anon: {} }
checks: [ { id: GET, identity: anon, request: { path: / }, expect: allow } ]
phases: [ { name: bench, duration: ${SECS}s, users: $CONNS } ]
YAML

# measure NAME COMMAND...: runs the command, prints "NAME requests seconds cpu_seconds".
measure() {
  local name="$1"; shift
  python3 - "$name" "$WORK/out.$name" "$@" <<'PY'
import re, resource, subprocess, sys, time, json
name, out = sys.argv[1], sys.argv[2]
cmd = sys.argv[3:]
t0 = time.monotonic()
p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
wall = time.monotonic() - t0
ru = resource.getrusage(resource.RUSAGE_CHILDREN)
cpu = ru.ru_utime + ru.ru_stime
text = p.stdout
open(out, "w").write(text)
if name == "wrk":
    n = int(re.search(r"(\d+) requests in", text).group(1)); secs = float(re.search(r"requests in ([\d.]+)s", text).group(1))
elif name == "oha":
    j = json.loads(text); s = j["summary"]
    n = sum(int(v) for v in j.get("statusCodeDistribution", {}).values()); secs = s["total"]
else:
    j = json.load(open(sys.argv[-1] + "/summary.json")); n = j["requests"]["completed"]; secs = j["duration_s"]
print(f"{name} {n} {secs:.2f} {cpu:.2f}")
PY
}

printf '%-9s %12s %10s %12s %18s\n' generator requests "req/s" "cpu-seconds" "req/cpu-second"
for round in $(seq "$ROUNDS"); do
  for gen in wrk oha gauntlet; do
    case $gen in
      wrk) line=$(measure wrk wrk -t2 -c"$CONNS" -d"${SECS}s" "http://127.0.0.1:$PORT/") ;;
      oha) line=$(measure oha oha -z "${SECS}s" -c "$CONNS" --no-tui --output-format json "http://127.0.0.1:$PORT/") ;;
      gauntlet) rm -rf "$WORK/g"; line=$(measure gauntlet ./target/release/gauntlet run "$WORK/scenario.yaml" --headless --out "$WORK/g") ;;
    esac
    read -r name n secs cpu <<<"$line"
    python3 -c "import sys; n,s,c=int(sys.argv[2]),float(sys.argv[3]),float(sys.argv[4]); print(f'{sys.argv[1]:<9} {n:>12} {n/s:>10.0f} {c:>12.2f} {n/c:>18.0f}')" "$name" "$n" "$secs" "$cpu"
  done
done
