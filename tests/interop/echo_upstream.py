#!/usr/bin/env python3
"""A loopback-only upstream for checking the interop gateways by hand: answers every
request with 200 and a JSON echo of the method, the path exactly as received and the
request headers (lower-cased names, repeated headers as lists).

    echo_upstream.py [PORT]        # listens on 127.0.0.1:PORT (default 9000)
"""
import json
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class Echo(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def handle_one(self):
        length = int(self.headers.get("content-length") or 0)
        body = self.rfile.read(length) if length else b""
        headers = {}
        for name, value in self.headers.items():
            headers.setdefault(name.lower(), []).append(value)
        out = json.dumps({"method": self.command, "path": self.path, "headers": headers,
                          "body_len": len(body)}, indent=1).encode()
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(out)))
        self.end_headers()
        self.wfile.write(out)

    do_GET = do_POST = do_DELETE = do_PUT = do_HEAD = do_PATCH = handle_one

    def log_message(self, fmt, *args):
        pass


if __name__ == "__main__":
    port = int(sys.argv[1]) if len(sys.argv) > 1 else 9000
    ThreadingHTTPServer(("127.0.0.1", port), Echo).serve_forever()
