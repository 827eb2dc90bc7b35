#!/usr/bin/env python3
"""Keep-alive probe: sends HTTP/1.1 requests one after another on ONE TLS connection (mTLS),
with chosen pauses, and reports for each request the status or what happened instead
(EOF = the server closed without answering). Unlike curl, it never retries on a new
connection, so a gateway that drops a request on a kept-alive connection shows up.
Loopback only.

    ka-probe.py PORT STEP [STEP ...] [--cert alice] [--certs DIR] [--token TOKEN|--no-token]
    STEP: [PAUSE_MS:]METHOD:PATH[:bearer|:nobearer]  e.g.  GET:/api/x  700:GET:/admin/y:nobearer

The token defaults to a fresh RS256 token for the certificate's CN (mint.py).
"""
import argparse
import os
import socket
import ssl
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("port", type=int)
    ap.add_argument("steps", nargs="+")
    ap.add_argument("--cert", default="alice")
    ap.add_argument("--certs", default=os.path.join(HERE, "..", "..", "certs"))
    ap.add_argument("--token", default=None)
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--tls12", action="store_true", help="cap the client at TLS 1.2")
    a = ap.parse_args()
    if a.host not in ("127.0.0.1", "localhost", "::1"):
        sys.exit("loopback only")
    certs = os.path.abspath(a.certs)
    token = a.token
    if token is None:
        cn = a.cert.split("-")[0]
        token = subprocess.run([sys.executable, os.path.join(HERE, "mint.py"), "--certs", certs, "rs256", cn],
                               check=True, capture_output=True, text=True).stdout.strip()
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.load_verify_locations(os.path.join(certs, "ca.pem"))
    cert_dir = certs if os.path.exists(os.path.join(certs, a.cert + ".pem")) else os.path.dirname(a.cert)
    base = os.path.basename(a.cert)
    ctx.load_cert_chain(os.path.join(cert_dir, base + ".pem"), os.path.join(cert_dir, base + ".key"))
    ctx.set_alpn_protocols(["http/1.1"])
    if a.tls12:
        ctx.maximum_version = ssl.TLSVersion.TLSv1_2
    raw = socket.create_connection((a.host, a.port))
    raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    lport = raw.getsockname()[1]
    s = ctx.wrap_socket(raw, server_hostname="localhost")
    t0 = time.monotonic()
    print(f"connected: {s.version()} local port {lport}")
    buf = b""
    for i, step in enumerate(a.steps):
        parts = step.split(":")
        pause = 0
        if parts[0].isdigit():
            pause = int(parts.pop(0))
        method, path = parts[0], parts[1]
        bearer = not (len(parts) > 2 and parts[2] == "nobearer")
        if pause:
            time.sleep(pause / 1000)
        req = f"{method} {path} HTTP/1.1\r\nhost: localhost:{a.port}\r\nx-gauntlet-tag: probe.{i}\r\n"
        if bearer:
            req += f"authorization: Bearer {token}\r\n"
        req += "\r\n"
        ts = time.monotonic()
        try:
            s.sendall(req.encode())
            while b"\r\n\r\n" not in buf:
                chunk = s.recv(65536)
                if not chunk:
                    raise EOFError
                buf += chunk
            head, rest = buf.split(b"\r\n\r\n", 1)
            lines = head.decode(errors="replace").split("\r\n")
            clen = 0
            conn_close = False
            for h in lines[1:]:
                n, _, v = h.partition(":")
                if n.lower() == "content-length":
                    clen = int(v.strip())
                if n.lower() == "connection" and "close" in v.lower():
                    conn_close = True
            while len(rest) < clen:
                chunk = s.recv(65536)
                if not chunk:
                    raise EOFError
                rest += chunk
            buf = rest[clen:]
            print(f"{1000 * (ts - t0):9.1f} ms  #{i} {method} {path}: {lines[0]}"
                  f"{'  [connection: close]' if conn_close else ''}  ({1000 * (time.monotonic() - ts):.1f} ms)")
        except (EOFError, ssl.SSLEOFError, ssl.SSLZeroReturnError, ConnectionResetError, BrokenPipeError) as e:
            print(f"{1000 * (ts - t0):9.1f} ms  #{i} {method} {path}: NO RESPONSE ({type(e).__name__}) "
                  f"after {1000 * (time.monotonic() - ts):.1f} ms")
            return 1
    s.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
