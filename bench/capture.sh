#!/usr/bin/env bash
# Capture reading throughput and memory. Builds a large input from a shipped fixture, then
# times `gauntlet replay inspect` over it — the whole pipeline a replay streams through — and
# reports MB/s, requests/s and gauntlet's own peak RSS (VmHWM, sampled; tshark's is apart).
#   bench/capture.sh [SIZE_MB]        pcap: tests/captures/shop.pcap repeated (default 256 MB)
#   bench/capture.sh --har SIZE_MB    a HAR file of that size (entries with 1 KiB bodies)
#   bench/capture.sh --tls COPIES     tests/captures/shop-tls.pcap repeated COPIES times (3 TLS
#                                     connections each), decrypted through tshark with its key log
# Each copy of a capture goes on its own client port, timestamps moved on. Needs a release build
# (and tshark for --tls: installed when missing, as root).
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
mode=pcap
case "${1:-}" in
    --har) mode=har; shift ;;
    --tls) mode=tls; shift ;;
esac
bin="$root/target/release/gauntlet"
[ -x "$bin" ] || { echo "bench/capture.sh: build first: cargo build --release" >&2; exit 2; }
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT

repeat_pcap() { # SRC DST SIZE_MB COPIES (the first bound reached ends it)
python3 - "$@" <<'PY'
import struct, sys, collections
src, dst, mb, copies = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
data = open(src, "rb").read()
hdr, body = data[:24], data[24:]
assert struct.unpack("<I", hdr[:4])[0] == 0xa1b2c3d4, "little-endian µs pcap expected"
recs, i = [], 0
while i < len(body):
    ts, us, cap, orig = struct.unpack("<IIII", body[i:i+16])
    recs.append((ts, us, body[i+16:i+16+cap], orig))
    i += 16 + cap
# The server's port is the one every frame carries (Ethernet 14 + IPv4 20 bytes in).
ports = collections.Counter()
for _, _, fr, _ in recs:
    ports.update(set(struct.unpack(">HH", fr[34:38])))
server = ports.most_common(1)[0][0]
t0 = recs[0][0]
with open(dst, "wb") as f:
    f.write(hdr)
    written, copy = 24, 0
    while written < mb * 1024 * 1024 and copy < copies:
        for ts, us, frame, orig in recs:
            fr = bytearray(frame)
            sport, dport = struct.unpack(">HH", fr[34:38])
            at = 36 if sport == server else 34
            client = dport if sport == server else sport
            fr[at:at+2] = struct.pack(">H", 1024 + (client + copy * 7) % 64000)
            # checksums are not verified by readers of captures; leave them.
            f.write(struct.pack("<IIII", ts - t0 + 1_700_000_000 + copy, us, len(fr), orig))
            f.write(fr)
            written += 16 + len(fr)
        copy += 1
print(f"built {written/1e6:.0f} MB, {copy} copies of {len(recs)} records", file=sys.stderr)
PY
}

args=()
case $mode in
pcap)
    input="$tmp/big.pcap"
    repeat_pcap "$root/tests/captures/shop.pcap" "$input" "${1:-256}" 100000000 ;;
tls)
    command -v tshark >/dev/null || { [ "$(id -u)" = 0 ] && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq tshark >/dev/null; } \
        || { echo "bench/capture.sh --tls: needs tshark (apt-get install tshark)" >&2; exit 2; }
    input="$tmp/big-tls.pcap"
    repeat_pcap "$root/tests/captures/shop-tls.pcap" "$input" 100000 "${1:-1000}"
    args=(--keylog "$root/tests/captures/shop-tls.keys") ;;
har)
    input="$tmp/big.har"
    python3 - "$input" "${1:-256}" <<'PY'
import json, sys
dst, mb = sys.argv[1], int(sys.argv[2])
body = "b" * 1024
with open(dst, "w") as f:
    f.write('{"log":{"version":"1.2","creator":{"name":"bench","version":"1"},"entries":[')
    n, written = 0, 0
    while written < mb * 1024 * 1024:
        s, us = divmod(n, 1000)
        e = {"startedDateTime": f"2026-01-01T{s // 3600 % 24:02}:{s // 60 % 60:02}:{s % 60:02}.{us:03}000Z",
             "connection": str(n % 97),
             "request": {"method": "POST", "url": f"https://shop.test/api/{n % 50}?q={n}",
                         "headers": [{"name": "content-type", "value": "text/plain"}],
                         "postData": {"mimeType": "text/plain", "text": body}},
             "response": {"status": 200, "headers": [], "content": {"size": 1024, "text": body}}}
        line = ("," if n else "") + json.dumps(e)
        f.write(line)
        written += len(line)
        n += 1
    f.write("]}}")
print(f"built {written/1e6:.0f} MB, {n} entries", file=sys.stderr)
PY
    ;;
esac

bytes=$(stat -c %s "$input")
start=$(date +%s.%N)
"$bin" replay inspect --json "${args[@]}" "$input" > "$tmp/out.json" &
pid=$!
hwm=0
while kill -0 "$pid" 2>/dev/null; do
    v=$(awk '/^VmHWM/ {print $2}' "/proc/$pid/status" 2>/dev/null || true)
    [ -n "$v" ] && [ "$v" -gt "$hwm" ] && hwm=$v
    sleep 0.1
done
wait "$pid"
end=$(date +%s.%N)
python3 - "$tmp/out.json" "$bytes" "$start" "$end" "$hwm" "$mode" <<'PY'
import json, sys
p = json.load(open(sys.argv[1]))
size, secs, rss, mode = int(sys.argv[2]), float(sys.argv[4]) - float(sys.argv[3]), int(sys.argv[5]), sys.argv[6]
c = p["capture"]
h = c["decrypted"]["http"] if mode == "tls" else c["http"]
what = f"{c['decrypted']['connections']} TLS connections decrypted" if mode == "tls" else f"{c['tcp']['flows']} connections"
print(f"{mode} {size/1e6:.0f} MB, {c['frames']['frames']} frames, {what}, {h['requests']} requests ({h['answered']} answered)")
print(f"read in {secs:.2f}s: {size/1e6/secs:.0f} MB/s, {h['requests']/secs:,.0f} requests/s; gauntlet's peak RSS {rss/1024:.1f} MiB")
PY
