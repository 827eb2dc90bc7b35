#!/usr/bin/env bash
# One bounded gauntlet load run against an interop gateway, loopback only:
# starts the gateway (gateways.sh) in front of the run's in-process oracle, writes the
# scenario (make-scenario.py: zt-core + minted identities), optionally captures the
# gateway port with tcpdump, runs gauntlet, stops everything it started, prints a digest.
#
#   run-load.sh KIND PROTO [RATE] [DURATION]     e.g.  run-load.sh haproxy h1 800/s 20s
#
# Environment: OUT (default /tmp/gauntlet-interop), IDS (35), MIX (all | ids | badsig),
#   BADSIG_SHARE (percent, MIX=badsig), EXCLUDE (check ids),
#   NAME (results name, default KIND-PROTO), PROFILE (target profile; default the reference's),
#   CAPTURE (1: tcpdump -s 160 of the gateway port into OUT/KIND-PROTO.pcap),
#   GAUNTLET (default /tmp/gauntlet-base/gauntlet), plus gateways.sh's GW_* knobs.
# Results: OUT/res-KIND-PROTO/ (summary.json ...), OUT/KIND-PROTO.gateway.log (copy).
set -u
kind="${1:?usage: run-load.sh KIND PROTO [RATE] [DURATION]}"
proto="${2:?usage: run-load.sh KIND PROTO [RATE] [DURATION]}"
rate="${3:-800/s}"
duration="${4:-20s}"
here="$(cd "$(dirname "$0")" && pwd)"
out="${OUT:-/tmp/gauntlet-interop}"
gauntlet="${GAUNTLET:-/tmp/gauntlet-base/gauntlet}"
name="${NAME:-$kind-$proto}"
mkdir -p "$out"
# shellcheck source=gateways.sh
. "$here/gateways.sh"

oracle_port="$(gw_free_port)"
gw_start "$kind" "127.0.0.1:$oracle_port" >/dev/null || exit 1
gw_dir="$GW_DIR"
tcpdump_pid=""
cleanup() {
    [ -n "$tcpdump_pid" ] && kill "$tcpdump_pid" 2>/dev/null && wait "$tcpdump_pid" 2>/dev/null
    gw_stop "$gw_dir"
}
trap cleanup EXIT

scenario="$(python3 "$here/make-scenario.py" --out "$out" --port "$GW_PORT" --oracle "$oracle_port" \
    --protocol "$proto" --rate "$rate" --duration "$duration" --ids "${IDS:-35}" --mix "${MIX:-all}" --exclude "${EXCLUDE:-}" \
    --badsig-share "${BADSIG_SHARE:-6}" --profile "${PROFILE:-$here/../../scenarios/targets/reference.yaml}" \
    --name "$name")" || exit 1
if [ "${CAPTURE:-0}" = 1 ]; then
    # bounded: at most 3M packets, and stopped with the run
    tcpdump -i lo -n -s 160 -c 3000000 -w "$out/$name.pcap" "tcp port $GW_PORT" 2>"$out/$name.tcpdump.log" &
    tcpdump_pid=$!
    sleep 1
fi
secs="${duration%s}"
case "$secs" in *[!0-9]*) secs=60 ;; esac
rm -rf "$out/res-$name"
echo "run: $kind ($GW_PORT, run dir $gw_dir) $proto $rate for $duration, oracle 127.0.0.1:$oracle_port"
timeout "$((secs + 60))" "$gauntlet" run "$scenario" --headless --out "$out/res-$name" >"$out/$name.run.log" 2>&1
rc=$?
sleep 0.5
cp "$gw_dir"/*.log "$out/" 2>/dev/null
for f in "$gw_dir"/*.log; do cp "$f" "$out/$name.$(basename "$f")"; done
echo "gauntlet exit $rc; results $out/res-$name; gateway logs $out/$name.*.log"
python3 "$here/summarize.py" "$out/res-$name"
