#!/usr/bin/env bash
# Per-core generator benchmark, pinned and side by side (issue 15): the generator on CPU 0 with
# one thread, the server with one worker on CPU 1, closed loop, BENCH_SECONDS (10) per run,
# BENCH_ROUNDS (3) rounds. Figures are requests per generator CPU-second (user+sys of the
# generator's process tree, getrusage), and gauntlet's ratio to the peer in the same round;
# the medians of the rounds are printed last. Shapes:
#   h1        HTTP/1.1 keep-alive, 64 connections      gauntlet vs wrk -t1 -c64
#   h2-8x8    HTTP/2 over TLS, 8 connections × 8 streams  gauntlet vs h2load -t1 -c8 -m8
#   h2-64x1   HTTP/2 over TLS, 64 connections × 1 stream  gauntlet vs h2load -t1 -c64 -m1
#   h3        HTTP/3 (Caddy), 8 streams on 1 connection — no peer here speaks h3: absolute figures
# nginx (one worker) serves h1 and h2; Caddy (GOMAXPROCS=1) serves h3. gauntlet classifies
# every response and records its histograms as in any run. Installs wrk, nghttp2-client
# (h2load), nginx and caddy from the system packages when missing (root).
#   BENCH_SHAPES="h1 h2-8x8" bench/percore.sh     # a subset
#   BENCH_PROFILE=1 BENCH_SHAPES=h1 bench/percore.sh   # gauntlet under `perf record` (cpu-clock):
#                                                       # its top functions by self time, no ratios
set -euo pipefail
cd "$(dirname "$0")/.."
SECS="${BENCH_SECONDS:-10}"
ROUNDS="${BENCH_ROUNDS:-3}"
SHAPES="${BENCH_SHAPES:-h1 h2-8x8 h2-64x1 h3}"
WORK="$(mktemp -d)"
cleanup() {
  kill "$(cat "$WORK/nginx.pid" 2>/dev/null)" 2>/dev/null || true
  [ -n "${CADDY_PID:-}" ] && kill "$CADDY_PID" 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT
[ "$(nproc)" -ge 2 ] || { echo "bench: needs 2 CPUs (generator and server pinned apart)" >&2; exit 3; }

need_apt() {
  command -v "$1" >/dev/null 2>&1 && return
  echo "bench: installing $2 from the system packages" >&2
  [ -n "${APT_UPDATED:-}" ] || { apt-get update -qq; APT_UPDATED=1; }
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$2" >/dev/null
}
need_apt wrk wrk
need_apt h2load nghttp2-client
need_apt nginx nginx-light
case " $SHAPES " in *" h3 "*) need_apt caddy caddy ;; esac
cargo build --release --quiet
G=./target/release/gauntlet
CERTS="$WORK/certs"
"$G" certs init --dir "$CERTS" >/dev/null

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
PORT="$(free_port)"; TLSPORT="$(free_port)"; H3PORT="$(free_port)"
mkdir -p "$WORK/logs"
cat > "$WORK/nginx.conf" <<CONF
worker_processes 1;
worker_cpu_affinity 10;
pid $WORK/nginx.pid;
error_log $WORK/logs/error.log crit;
events { worker_connections 4096; }
http {
  access_log off;
  keepalive_requests 100000000;
  keepalive_timeout 300s;
  http2_max_concurrent_streams 128;
  server {
    listen 127.0.0.1:$PORT;
    listen 127.0.0.1:$TLSPORT ssl http2;
    ssl_certificate $CERTS/server.pem;
    ssl_certificate_key $CERTS/server.key;
    location / { default_type text/plain; return 200 "ok\n"; }
  }
}
CONF
nginx -c "$WORK/nginx.conf" -p "$WORK"
for _ in $(seq 50); do
  python3 -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:$PORT/')" 2>/dev/null && break
  sleep 0.1
done
case " $SHAPES " in *" h3 "*)
  cat > "$WORK/Caddyfile" <<CADDY
{
  admin off
  auto_https off
  servers {
    protocols h1 h2 h3
  }
}
https://localhost:$H3PORT {
  bind 127.0.0.1
  tls $CERTS/server.pem $CERTS/server.key
  respond "ok" 200
}
CADDY
  GOMAXPROCS=1 taskset -c 1 caddy run --config "$WORK/Caddyfile" --adapter caddyfile >"$WORK/logs/caddy.log" 2>&1 &
  CADDY_PID=$!
  sleep 2
;; esac

# scenario PROTOCOL URL CONNECTIONS USERS: a closed-loop gauntlet scenario on one thread.
scenario() {
  cat > "$WORK/$1.yaml" <<YAML
gauntlet: 1
name: percore-$1
target: { url: "$3", protocol: $2, ca: "$CERTS/ca.pem", server_name: localhost, threads: 1, connections: $4, max_in_flight: $5, timeout: 10s }
identities: { anon: {} }
checks: [ { id: GET, identity: anon, request: { path: / }, expect: allow } ]
phases: [ { name: bench, duration: ${SECS}s, users: $5 } ]
YAML
}
scenario h1 h1 "http://127.0.0.1:$PORT" 64 64
scenario h2-8x8 h2 "https://127.0.0.1:$TLSPORT" 8 64
scenario h2-64x1 h2 "https://127.0.0.1:$TLSPORT" 64 64
scenario h3 h3 "https://127.0.0.1:$H3PORT" 1 8

# measure KIND COMMAND...: runs COMMAND pinned to CPU 0; prints "requests seconds cpu_seconds".
measure() {
  local kind="$1"; shift
  python3 - "$kind" "$@" <<'PY'
import re, resource, subprocess, sys, time, json
kind, cmd = sys.argv[1], ["taskset", "-c", "0"] + sys.argv[2:]
p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
ru = resource.getrusage(resource.RUSAGE_CHILDREN)
cpu = ru.ru_utime + ru.ru_stime
t = p.stdout
try:
    if kind == "wrk":
        n = int(re.search(r"(\d+) requests in", t).group(1)); secs = float(re.search(r"requests in ([\d.]+)s", t).group(1))
    elif kind == "h2load":
        n = int(re.search(r"requests: \d+ total, \d+ started, \d+ done, (\d+) succeeded", t).group(1))
        secs = float(re.search(r"finished in ([\d.]+)s", t).group(1))
    else:
        j = json.load(open(sys.argv[-1] + "/summary.json")); n = j["requests"]["completed"]; secs = j["duration_s"]
except Exception as e:
    sys.stderr.write(f"bench: could not read {kind}'s output ({e}):\n{t[-2000:]}\n"); sys.exit(1)
print(f"{n} {secs:.3f} {cpu:.3f}")
PY
}

gauntlet_run() { rm -rf "$WORK/out-$1"; measure gauntlet "$G" run "$WORK/$1.yaml" --headless --out "$WORK/out-$1"; }
peer_run() {
  case $1 in
    h1) measure wrk wrk -t1 -c64 -d"${SECS}s" "http://127.0.0.1:$PORT/" ;;
    h2-8x8) measure h2load h2load -t1 -c8 -m8 -D "$SECS" "https://127.0.0.1:$TLSPORT/" ;;
    h2-64x1) measure h2load h2load -t1 -c64 -m1 -D "$SECS" "https://127.0.0.1:$TLSPORT/" ;;
  esac
}
peer_name() { case $1 in h1) echo wrk ;; h2-*) echo h2load ;; *) echo - ;; esac; }

per_cpu() { python3 -c "import sys; n,c=float(sys.argv[1]),float(sys.argv[2]); print(f'{n/c:.0f}' if c > 0 else '0')" "$1" "$2"; }
us_per_req() { python3 -c "import sys; n,c=float(sys.argv[1]),float(sys.argv[2]); print(f'{c/n*1e6:.2f}' if n > 0 else '-')" "$1" "$2"; }

if [ -n "${BENCH_PROFILE:-}" ]; then
  need_apt perf linux-perf
  for shape in $SHAPES; do
    rm -rf "$WORK/out-$shape"
    taskset -c 0 perf record -q -e cpu-clock -F 1999 -g -o "$WORK/perf-$shape.data" \
      "$G" run "$WORK/$shape.yaml" --headless --out "$WORK/out-$shape" >/dev/null 2>&1
    echo "== $shape: gauntlet's functions by self time (perf, cpu-clock)"
    perf report -i "$WORK/perf-$shape.data" --no-children --stdio --sort dso,symbol --percent-limit 1 2>/dev/null \
      | grep -E '^ +[0-9.]+%' | head -"${BENCH_TOP:-30}"
  done
  exit 0
fi
printf '%-8s %-5s %-8s %10s %9s %14s %9s %8s\n' shape round gen requests cpu_s "req/cpu-s" "us/req" ratio
: > "$WORK/ratios"
# The machine drifts between runs, so the order alternates: odd rounds run gauntlet first,
# even rounds the peer first (a drift then weighs on both sides of the median alike).
for round in $(seq "$ROUNDS"); do
  for shape in $SHAPES; do
    if [ "$shape" != h3 ] && [ $((round % 2)) -eq 0 ]; then
      read -r pn ps pc <<<"$(peer_run "$shape")"
      read -r gn gs gc <<<"$(gauntlet_run "$shape")"
    else
      read -r gn gs gc <<<"$(gauntlet_run "$shape")"
      [ "$shape" = h3 ] || read -r pn ps pc <<<"$(peer_run "$shape")"
    fi
    gpc=$(per_cpu "$gn" "$gc")
    [ "$gn" -gt 0 ] || echo "bench: gauntlet got no answer over $shape (server log: $WORK/logs/)" >&2
    printf '%-8s %-5s %-8s %10s %9s %14s %9s %8s\n' "$shape" "$round" gauntlet "$gn" "$gc" "$gpc" "$(us_per_req "$gn" "$gc")" ""
    if [ "$shape" != h3 ]; then
      ppc=$(per_cpu "$pn" "$pc")
      ratio=$(python3 -c "import sys; print(f'{float(sys.argv[1])/float(sys.argv[2]):.2f}')" "$gpc" "$ppc")
      printf '%-8s %-5s %-8s %10s %9s %14s %9s %8s\n' "$shape" "$round" "$(peer_name "$shape")" "$pn" "$pc" "$ppc" "$(us_per_req "$pn" "$pc")" "${ratio}x"
      echo "$shape $ratio" >> "$WORK/ratios"
    else
      echo "h3 $gpc" >> "$WORK/ratios"
    fi
  done
done
echo
echo "medians over $ROUNDS round(s): gauntlet ÷ peer, requests per generator CPU-second (h3: gauntlet's own)"
python3 - "$WORK/ratios" <<'PY'
import statistics, sys, collections
by = collections.defaultdict(list)
for line in open(sys.argv[1]):
    k, v = line.split(); by[k].append(float(v))
for k, v in by.items():
    unit = " req/cpu-s" if k == "h3" else "x"
    print(f"  {k:<8} median {statistics.median(v):.2f}{unit}  (rounds: {', '.join(f'{x:.2f}' for x in v)})")
PY
