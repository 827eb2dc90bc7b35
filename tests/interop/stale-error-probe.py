#!/usr/bin/env python3
"""Shows HAProxy 2.6.12's stale-OpenSSL-error bug (haproxy/haproxy#2643, fixed upstream by
46b1fec0e "BUG/MEDIUM: jwt: Clear SSL error queue on error when checking the signature"):
a failed jwt_verify leaves errors on the worker thread's OpenSSL error queue, and the next
SSL_read on that thread that returns <= 0 (normally just "want read") is taken for a fatal
SSL error — on whatever TLS connection that happens to be. The victim's request has already
been read, so HAProxy processes and logs it (e.g. 200 or 401), but the connection is in
error: the client gets close_notify + FIN instead of the answer.

    stale-error-probe.py PORT [--rounds N] [--token-kind KIND]

Run against a gateway with ONE thread (GW_NBTHREAD=1) so both connections share it.
Per round: connection A (alice, valid token) gets an answer; connection B (alice) sends a
token of KIND; then A sends again on its kept-alive connection. A's second request should
be answered; with the bug it gets nothing when B's token failed *inside* jwt_verify.
KIND: any mint.py variant (badsig, tampered, hs256, expired, nosig, ...) or 'all'.
Loopback only.
"""
import argparse
import os
import socket
import ssl
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))


class Conn:
    def __init__(self, port, certs, cert):
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.load_verify_locations(os.path.join(certs, "ca.pem"))
        ctx.load_cert_chain(os.path.join(certs, cert + ".pem"), os.path.join(certs, cert + ".key"))
        ctx.set_alpn_protocols(["http/1.1"])
        raw = socket.create_connection(("127.0.0.1", port))
        raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.lport = raw.getsockname()[1]
        self.s = ctx.wrap_socket(raw, server_hostname="localhost")
        self.port = port
        self.buf = b""

    def get(self, path, token, tag):
        req = (f"GET {path} HTTP/1.1\r\nhost: localhost:{self.port}\r\nx-gauntlet-tag: {tag}\r\n"
               f"authorization: Bearer {token}\r\n\r\n")
        try:
            self.s.sendall(req.encode())
            while b"\r\n\r\n" not in self.buf:
                c = self.s.recv(65536)
                if not c:
                    return "NO RESPONSE (EOF: close_notify/FIN)"
                self.buf += c
            head, rest = self.buf.split(b"\r\n\r\n", 1)
            lines = head.decode(errors="replace").split("\r\n")
            n = 0
            for h in lines[1:]:
                k, _, v = h.partition(":")
                if k.lower() == "content-length":
                    n = int(v)
            while len(rest) < n:
                c = self.s.recv(65536)
                if not c:
                    return "NO RESPONSE (EOF mid-body)"
                rest += c
            self.buf = rest[n:]
            return lines[0].split(" ", 1)[1]
        except (ssl.SSLError, OSError) as e:
            return f"NO RESPONSE ({type(e).__name__})"


def mint(certs, kind):
    return subprocess.run([sys.executable, os.path.join(HERE, "mint.py"), "--certs", certs, kind, "alice", "eng"],
                          check=True, capture_output=True, text=True).stdout.strip()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("port", type=int)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--token-kind", default="all")
    ap.add_argument("--certs", default=os.path.abspath(os.path.join(HERE, "..", "..", "certs")))
    ap.add_argument("--path", default="/api/items")
    a = ap.parse_args()
    kinds = (["rs256", "es256", "badsig", "tampered", "es256badsig", "es256tampered", "nosig", "hs256",
              "expired", "none", "unknownkid"]
             if a.token_kind == "all" else [a.token_kind])
    good = mint(a.certs, "rs256")
    lost_total = 0
    for kind in kinds:
        tok = mint(a.certs, kind)
        lost = 0
        for r in range(a.rounds):
            A = Conn(a.port, a.certs, "alice")
            B = Conn(a.port, a.certs, "alice")
            a1 = A.get(a.path, good, f"probe.A1.{kind}.{r}")
            b1 = B.get(a.path, tok, f"probe.B.{kind}.{r}")
            time.sleep(0.05)
            a2 = A.get(a.path, good, f"probe.A2.{kind}.{r}")
            if a2.startswith("NO RESPONSE"):
                lost += 1
            print(f"{kind:10s} round {r}: A(port {A.lport}) {a1:22s} | B(port {B.lport}) {kind} -> {b1:18s} | "
                  f"A again -> {a2}")
            for c in (A, B):
                try:
                    c.s.close()
                except OSError:
                    pass
        lost_total += lost
        print(f"{kind:10s}: A's second request lost in {lost}/{a.rounds} rounds")
    return 0


if __name__ == "__main__":
    sys.exit(main())
