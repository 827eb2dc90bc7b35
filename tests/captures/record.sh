#!/usr/bin/env bash
# Records tests/captures/shop.pcap: real traffic on loopback, captured by tcpdump, of clients
# (curl and a raw socket) talking to a stand-in shop app (shop_app.py): keep-alive
# connections, a pipelined burst, chunked request and response bodies, bearer tokens of three
# users and anonymous requests, recorded answers 200/201/401/403. Every byte stays on
# 127.0.0.1. Needs root (tcpdump on lo); installs tcpdump and curl when they are missing.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
out="${1:-$here/shop.pcap}"
need() { command -v "$1" >/dev/null || { echo "record.sh: installing $2" >&2; apt-get install -y "$2" >/dev/null; }; }
need tcpdump tcpdump
need curl curl
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
python3 "$here/shop_app.py" "$port" & app=$!
tmp=$(mktemp -d)
trap 'kill $app ${dump:-} 2>/dev/null || true; rm -rf "$tmp"' EXIT
for _ in $(seq 50); do curl -s "http://127.0.0.1:$port/public/ping" >/dev/null && break; sleep 0.1; done
tcpdump -i lo -U -s 0 -w "$tmp/raw.pcap" "tcp port $port" 2>/dev/null & dump=$!
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
sleep 1
kill -INT $dump; wait $dump 2>/dev/null || true
cp "$tmp/raw.pcap" "$out"
echo "record.sh: wrote $out ($(stat -c %s "$out") bytes)"
