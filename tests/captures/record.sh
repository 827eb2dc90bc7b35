#!/usr/bin/env bash
# Records tests/captures/shop.pcap: real traffic on loopback, captured by tcpdump, of clients
# (curl and a raw socket) talking to a stand-in shop app (shop_app.py): keep-alive
# connections, a pipelined burst, chunked request and response bodies, bearer tokens of three
# users and anonymous requests, recorded answers 200/201/401/403; and HTTP/2 in clear text
# (curl --http2-prior-knowledge to gauntlet's own oracle, which speaks h2c) when a gauntlet
# binary is there ($GAUNTLET, else target/release/gauntlet). Every byte stays on 127.0.0.1.
# Needs root (tcpdump on lo); installs tcpdump and curl when they are missing.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
out="${1:-$here/shop.pcap}"
tls_out="${2:-$here/shop-tls.pcap}"
need() { command -v "$1" >/dev/null || { echo "record.sh: installing $2" >&2; apt-get install -y "$2" >/dev/null; }; }
need tcpdump tcpdump
need curl curl
free() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
port=$(free); port2=$(free)
root="$(cd "$here/../.." && pwd)"
gauntlet="${GAUNTLET:-$root/target/release/gauntlet}"
python3 "$here/shop_app.py" "$port" & app=$!
oracle=""
if [ -x "$gauntlet" ]; then
  "$gauntlet" oracle --scenario "$root/scenarios/demo.yaml" --listen "127.0.0.1:$port2" >/dev/null 2>&1 & oracle=$!
else
  echo "record.sh: no gauntlet binary at $gauntlet (cargo build --release): recording without the h2c part" >&2
fi
tmp=$(mktemp -d)
trap 'kill $app $oracle ${dump:-} 2>/dev/null || true; rm -rf "$tmp"' EXIT
for _ in $(seq 50); do curl -s "http://127.0.0.1:$port/public/ping" >/dev/null && break; sleep 0.1; done
if [ -n "$oracle" ]; then
  for _ in $(seq 50); do curl -s "http://127.0.0.1:$port2/" >/dev/null && break; sleep 0.1; done
fi
tcpdump -i lo -U -s 0 -w "$tmp/raw.pcap" "tcp port $port or tcp port $port2" 2>/dev/null & dump=$!
sleep 1
jwt() { # an unsigned-looking production token: header.payload.signature with `sub`
  local h p
  h=$(printf '{"alg":"RS256","typ":"JWT","kid":"prod-1"}' | base64 -w0 | tr '+/' '-_' | tr -d '=')
  p=$(printf '{"sub":"%s","iss":"https://idp.shop.example","groups":["%s"]}' "$1" "$2" | base64 -w0 | tr '+/' '-_' | tr -d '=')
  printf '%s.%s.cHJvZHVjdGlvbi1zaWduYXR1cmU' "$h" "$p"
}
u="http://127.0.0.1:$port"
host=(-H "Host: shop.example")
# alice (eng): a keep-alive session: browse, order (POST), an export (chunked answer), a
# forbidden admin page.
curl -s "${host[@]}" -H "Authorization: Bearer $(jwt alice eng)" \
  "$u/api/orders?page=1" "$u/api/orders?page=2" "$u/api/export" "$u/admin/users" \
  -X GET >/dev/null
curl -s "${host[@]}" -H "Authorization: Bearer $(jwt alice eng)" -H "Content-Type: application/json" \
  -d '{"sku":"A-1","qty":2}' "$u/api/orders" >/dev/null
# A chunked upload.
printf '{"sku":"B-7","qty":1}' | curl -s "${host[@]}" -H "Authorization: Bearer $(jwt alice eng)" \
  -H "Transfer-Encoding: chunked" -H "Content-Type: application/json" --data-binary @- "$u/api/orders" >/dev/null
# bob (finance): reports, and the admin page.
curl -s "${host[@]}" -H "Authorization: Bearer $(jwt bob finance)" "$u/reports/q3" "$u/admin/users" >/dev/null
# carol (admin).
curl -s "${host[@]}" -H "Authorization: Bearer $(jwt carol admin)" "$u/admin/users" "$u/api/orders?page=1" >/dev/null
# Anonymous: public pages and a refused API call.
curl -s "${host[@]}" "$u/public/ping" "$u/api/orders" >/dev/null
# A pipelined burst: three requests in one write on one connection.
python3 - "$port" "$(jwt alice eng)" <<'PY'
import socket, sys, time
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])))
h = "Host: shop.example\r\nAuthorization: Bearer %s\r\n" % sys.argv[2]
s.sendall(("GET /api/orders?page=3 HTTP/1.1\r\n%s\r\nGET /api/orders?page=4 HTTP/1.1\r\n%s\r\n"
           "GET /admin/audit HTTP/1.1\r\n%sConnection: close\r\n\r\n" % (h, h, h)).encode())
data = b""
while True:
    chunk = s.recv(65536)
    if not chunk:
        break
    data += chunk
PY
# HTTP/2 with prior knowledge: carol's h2c connection to the oracle (it answers 200), two
# streams open at once, headers as HPACK literals (a hand-rolled client: curl 7.88 does not
# reuse an h2c connection), then curl's own single-request h2c connection.
if [ -n "$oracle" ]; then
  python3 - "$port2" "$(jwt carol admin)" <<'PY'
import socket, struct, sys
def frame(kind, flags, stream, payload=b""):
    return struct.pack(">I", len(payload))[1:] + bytes([kind, flags]) + struct.pack(">I", stream) + payload
def lit(name, value):  # literal header field without indexing, new name (RFC 7541 §6.2.2)
    n, v = name.encode(), value.encode()
    return b"\x00" + bytes([len(n)]) + n + (bytes([len(v)]) if len(v) < 127 else b"\x7f" + bytes([len(v) - 127])) + v
def block(method, path, token):
    return b"".join(lit(k, v) for k, v in [(":method", method), (":scheme", "http"), (":path", path),
                                           (":authority", "shop.example"), ("authorization", "Bearer " + token)])
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])))
s.sendall(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + frame(4, 0, 0)
          + frame(1, 0x5, 1, block("GET", "/api/orders?page=9", sys.argv[2]))
          + frame(1, 0x5, 3, block("GET", "/admin/audit", sys.argv[2])))
buf, ended = b"", set()
while len(ended) < 2:
    chunk = s.recv(65536)
    if not chunk:
        break
    buf += chunk
    while len(buf) >= 9:
        n = int.from_bytes(buf[:3], "big")
        if len(buf) < 9 + n:
            break
        kind, flags, stream = buf[3], buf[4], int.from_bytes(buf[5:9], "big") & 0x7FFFFFFF
        if kind == 4 and not flags & 1:
            s.sendall(frame(4, 1, 0))  # SETTINGS ACK
        if kind in (0, 1) and flags & 1:
            ended.add(stream)
        buf = buf[9 + n:]
s.sendall(frame(7, 0, 0, struct.pack(">II", 3, 0)))  # GOAWAY
s.close()
PY
  curl -s --http2-prior-knowledge -H "Authorization: Bearer $(jwt bob finance)" "http://127.0.0.1:$port2/reports/q4" >/dev/null
fi
sleep 1
kill -INT $dump; wait $dump 2>/dev/null || true
cp "$tmp/raw.pcap" "$out"
echo "record.sh: wrote $out ($(stat -c %s "$out") bytes)"

# HTTPS: the same app over TLS (the test PKI's server certificate, client certificates asked
# for: alice and carol present theirs, the anonymous client none), curl writing its TLS
# secrets to a key log (SSLKEYLOGFILE) next to the capture: shop-tls.pcap + shop-tls.keys.
tport=$(free)
python3 "$here/shop_app.py" "$tport" "$root/certs/server.pem" "$root/certs/server.key" "$root/certs/ca.pem" & tapp=$!
trap 'kill $app $oracle $tapp ${dump:-} 2>/dev/null || true; rm -rf "$tmp"' EXIT
ca=(--cacert "$root/certs/ca.pem" --resolve "localhost:$tport:127.0.0.1")
for _ in $(seq 50); do curl -s "${ca[@]}" "https://localhost:$tport/public/ping" >/dev/null && break; sleep 0.1; done
tcpdump -i lo -U -s 0 -w "$tmp/tls.pcap" "tcp port $tport" 2>/dev/null & dump=$!
sleep 1
keys="${tls_out%.pcap}.keys"
rm -f "$keys"
SSLKEYLOGFILE="$keys" curl -s "${ca[@]}" --cert "$root/certs/alice.pem" --key "$root/certs/alice.key" \
  -H "Authorization: Bearer $(jwt alice eng)" \
  "https://localhost:$tport/api/orders?page=1" "https://localhost:$tport/admin/users" >/dev/null
SSLKEYLOGFILE="$keys" curl -s "${ca[@]}" --cert "$root/certs/carol.pem" --key "$root/certs/carol.key" \
  -H "Authorization: Bearer $(jwt carol admin)" "https://localhost:$tport/admin/users" >/dev/null
SSLKEYLOGFILE="$keys" curl -s "${ca[@]}" "https://localhost:$tport/api/orders" >/dev/null
sleep 1
kill -INT $dump; wait $dump 2>/dev/null || true
cp "$tmp/tls.pcap" "$tls_out"
echo "record.sh: wrote $tls_out and $keys ($(stat -c %s "$tls_out") bytes)"
