#!/usr/bin/env python3
"""Mint test JWTs for the interop gateways (test PKI only; needs python3 + cryptography).

    mint.py [--certs DIR] VARIANT [SUB] [GROUP]

VARIANT: rs256 | es256 | none | badsig | es256badsig | nosig | tampered | es256tampered |
         hs256 | expired | future | wrongaud | wrongiss | unknownkid | noexp
Prints the compact token on stdout. Claims mirror scenarios/checks/zt-core.yaml:
iss https://idp.gauntlet.test, aud gauntlet-gateway, sub, groups [GROUP], exp +1h, iat now.
"""
import argparse
import base64
import json
import os
import sys
import time

from cryptography.hazmat.primitives import hashes, hmac, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, utils

HERE = os.path.dirname(os.path.abspath(__file__))


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def seg(obj) -> str:
    return b64(json.dumps(obj, separators=(",", ":")).encode())


def sign(alg: str, key_path: str, data: bytes) -> bytes:
    raw = open(key_path, "rb").read()
    if alg == "HS256":
        h = hmac.HMAC(raw, hashes.SHA256())
        h.update(data)
        return h.finalize()
    key = serialization.load_pem_private_key(raw, password=None)
    if alg == "RS256":
        return key.sign(data, padding.PKCS1v15(), hashes.SHA256())
    if alg == "ES256":
        r, s = utils.decode_dss_signature(key.sign(data, ec.ECDSA(hashes.SHA256())))
        return r.to_bytes(32, "big") + s.to_bytes(32, "big")
    raise SystemExit(f"unknown alg {alg}")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--certs", default=os.path.join(HERE, "..", "..", "certs"))
    ap.add_argument("variant")
    ap.add_argument("sub", nargs="?", default="alice")
    ap.add_argument("group", nargs="?", default="eng")
    a = ap.parse_args()
    now = int(time.time())
    claims = {"sub": a.sub, "groups": [a.group], "aud": "gauntlet-gateway",
              "iss": "https://idp.gauntlet.test", "exp": now + 3600, "iat": now}
    alg, kid, key = "RS256", "rs256-1", os.path.join(a.certs, "jwt-rs256.key")
    v = a.variant
    if v in ("es256", "es256badsig", "es256tampered"):
        alg, kid, key = "ES256", "es256-1", os.path.join(a.certs, "jwt-es256.key")
    elif v == "hs256":
        alg, key = "HS256", os.path.join(a.certs, "jwt-rs256.pub.pem")
    elif v == "expired":
        claims["exp"] = now - 600
    elif v == "future":
        claims["nbf"] = now + 600
    elif v == "wrongaud":
        claims["aud"] = "another-service"
    elif v == "wrongiss":
        claims["iss"] = "https://evil.example"
    elif v == "unknownkid":
        kid = "rotated-away-7"
    elif v == "noexp":
        del claims["exp"]
    if v == "none":
        print(seg({"alg": "nOnE", "typ": "JWT"}) + "." + seg(claims) + ".")
        return
    head = seg({"alg": alg, "typ": "JWT", "kid": kid})
    body = seg(claims)
    sig = sign(alg, key, f"{head}.{body}".encode())
    if v in ("badsig", "es256badsig"):
        sig = bytes([sig[0] ^ 1]) + sig[1:]
    if v == "nosig":
        print(f"{head}.{body}.")
        return
    if v in ("tampered", "es256tampered"):
        claims["groups"] = ["admin"]
        body = seg(claims)
    print(f"{head}.{body}.{b64(sig)}")


if __name__ == "__main__":
    sys.exit(main())
