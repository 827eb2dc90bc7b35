#!/usr/bin/env python3
"""A stand-in "production app" for recording replay fixtures: plain HTTP/1.1 on loopback,
keep-alive, a policy decided from the bearer token's `sub` (read, not verified: this is only
traffic to record), chunked answers on /api/export. Usage: shop_app.py PORT [CERT KEY] (with a
certificate and key: HTTPS)."""
import base64
import json
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


def sub_of(auth):
    if not auth or not auth.lower().startswith("bearer "):
        return None
    try:
        payload = auth.split(" ", 1)[1].split(".")[1]
        payload += "=" * (-len(payload) % 4)
        return json.loads(base64.urlsafe_b64decode(payload)).get("sub")
    except Exception:
        return None


class Shop(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def answer(self, status, body=b"ok\n", chunked=False):
        self.send_response(status)
        self.send_header("Content-Type", "text/plain")
        if chunked:
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            for part in (body[: len(body) // 2], body[len(body) // 2 :]):
                self.wfile.write(b"%x\r\n%s\r\n" % (len(part), part))
            self.wfile.write(b"0\r\n\r\n")
        else:
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    def body(self):
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            data = b""
            while True:
                size = int(self.rfile.readline().split(b";")[0], 16)
                if size == 0:
                    self.rfile.readline()
                    return data
                data += self.rfile.read(size)
                self.rfile.readline()
        n = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(n) if n else b""

    def route(self):
        self.body()
        sub = sub_of(self.headers.get("Authorization"))
        path = self.path
        if path.startswith("/public"):
            return self.answer(200)
        if sub is None:
            return self.answer(401, b"login required\n")
        if path.startswith("/admin") and sub != "carol":
            return self.answer(403, b"forbidden\n")
        if path.startswith("/reports") and sub != "bob":
            return self.answer(403, b"forbidden\n")
        if path.startswith("/api/export"):
            return self.answer(200, b"id,total\n1,10\n2,20\n3,30\n", chunked=True)
        if self.command == "POST":
            return self.answer(201, b"created\n")
        return self.answer(200)

    do_GET = do_POST = do_DELETE = do_PUT = route


if __name__ == "__main__":
    server = ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), Shop)
    if len(sys.argv) > 3:
        import ssl
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(sys.argv[2], sys.argv[3])
        if len(sys.argv) > 4:
            # Client certificates asked for (optional), as a zero-trust gateway's mTLS.
            ctx.load_verify_locations(sys.argv[4])
            ctx.verify_mode = ssl.CERT_OPTIONAL
        server.socket = ctx.wrap_socket(server.socket, server_side=True)
    server.serve_forever()
