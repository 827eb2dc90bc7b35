#!/usr/bin/env bash
# Capture reading throughput and memory: builds a large pcap by repeating the records of
# tests/captures/shop.pcap (each copy on its own client port, timestamps moved on), then
# times `gauntlet replay inspect` over it — frames → TCP reassembly → HTTP exchanges, the
# whole pipeline a replay streams through — and reports MB/s, requests/s and peak RSS.
# Usage: bench/capture.sh [SIZE_MB] (default 256). Needs a release build.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
size_mb="${1:-256}"
bin="$root/target/release/gauntlet"
[ -x "$bin" ] || { echo "bench/capture.sh: build first: cargo build --release" >&2; exit 2; }
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
python3 - "$root/tests/captures/shop.pcap" "$tmp/big.pcap" "$size_mb" <<'PY'
import struct, sys
src, dst, mb = sys.argv[1], sys.argv[2], int(sys.argv[3])
data = open(src, "rb").read()
hdr, body = data[:24], data[24:]
assert struct.unpack("<I", hdr[:4])[0] == 0xa1b2c3d4, "little-endian µs pcap expected"
recs, i = [], 0
while i < len(body):
    ts, us, cap, orig = struct.unpack("<IIII", body[i:i+16])
    recs.append((ts, us, body[i+16:i+16+cap], orig))
    i += 16 + cap
t0 = recs[0][0]
with open(dst, "wb") as f:
    f.write(hdr)
    written, copy = 24, 0
    while written < mb * 1024 * 1024:
        for ts, us, frame, orig in recs:
            fr = bytearray(frame)
            # Ethernet (14) + IPv4 (20): move the client side's port, whichever direction.
            sport, dport = struct.unpack(">HH", fr[34:38])
            if sport < dport:   # server → client
                fr[36:38] = struct.pack(">H", 1024 + (dport + copy * 7) % 64000)
            else:
                fr[34:36] = struct.pack(">H", 1024 + (sport + copy * 7) % 64000)
            # checksums are not verified by readers of captures; leave them.
            f.write(struct.pack("<IIII", ts - t0 + 1_700_000_000 + copy, us, len(fr), orig))
            f.write(fr)
            written += 16 + len(fr)
        copy += 1
print(f"built {written/1e6:.0f} MB, {copy} copies of {len(recs)} records", file=sys.stderr)
PY
bytes=$(stat -c %s "$tmp/big.pcap")
start=$(date +%s.%N)
/usr/bin/time -f "%M" -o "$tmp/rss" "$bin" replay inspect --json "$tmp/big.pcap" > "$tmp/out.json"
end=$(date +%s.%N)
python3 - "$tmp/out.json" "$bytes" "$start" "$end" "$(cat "$tmp/rss")" <<'PY'
import json, sys
p = json.load(open(sys.argv[1]))
size, secs, rss = int(sys.argv[2]), float(sys.argv[4]) - float(sys.argv[3]), int(sys.argv[5])
h, t = p["capture"]["http"], p["capture"]["tcp"]
print(f"capture {size/1e6:.0f} MB, {p['capture']['frames']['frames']} frames, {t['flows']} connections, {h['requests']} requests ({h['answered']} answered, {t['gaps']} gaps)")
print(f"read in {secs:.2f}s: {size/1e6/secs:.0f} MB/s, {h['requests']/secs:,.0f} requests/s; peak RSS {rss/1024:.1f} MiB")
PY
