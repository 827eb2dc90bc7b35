#!/usr/bin/env python3
"""Writes a gauntlet scenario for a load run against an interop gateway: the zt-core pack
(scenarios/checks/zt-core.yaml, with the reference target profile) plus N extra identities,
one client certificate each, minted with openssl from the test CA (certs/ca.pem + ca.key)
into OUT/ids/ (kept between calls; private keys stay in OUT, mode 0600).

    make-scenario.py --out DIR --port GATEWAY_PORT --oracle ORACLE_PORT
                     [--ids 35] [--protocol h1|h2] [--rate 800/s] [--duration 20s]
                     [--name NAME] [--mix all|ids|badsig] [--badsig-share 6]
                     [--exclude ID,ID] [--max-in-flight 64]
                     [--connections 2]

Identity uNN: CN=uNN, OU eng/finance/admin in turn, a token (RS256 or ES256 in turn) with
sub=uNN and groups=[OU]. Checks per identity: GET /api/items (allow), GET /reports/q3 (allow
for finance, else deny 403), GET /admin/users (allow for admin, else deny 403).
--mix suite weighs legitimate 70, attacks 27, the limit check 3 (the interop suite);
--mix ids sends only those checks (no zt-core negatives); --mix badsig sends the minted
identities' checks plus --badsig-share percent of RS256 tokens with a bad signature
(ZT-AUTHN-JWT-003 and -004, half each); --exclude drops checks (zt-core or
minted) from the mix, e.g. --exclude ZT-AUTHN-JWT-003,ZT-AUTHN-JWT-004. Prints the scenario path.
"""
import argparse
import os
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.abspath(os.path.join(HERE, "..", ".."))
GROUPS = ["eng", "finance", "admin"]
EXT = """basicConstraints=critical,CA:FALSE
keyUsage=critical,digitalSignature
extendedKeyUsage=clientAuth
"""


def mint(ids_dir: str, certs: str, name: str, ou: str) -> None:
    crt, key = os.path.join(ids_dir, name + ".pem"), os.path.join(ids_dir, name + ".key")
    if os.path.exists(crt) and os.path.exists(key):
        return
    csr = os.path.join(ids_dir, name + ".csr")
    ext = os.path.join(ids_dir, "client.ext")
    with open(ext, "w") as f:
        f.write(EXT)
    old = os.umask(0o077)
    try:
        subprocess.run(["openssl", "req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
                        "-nodes", "-keyout", key, "-subj", f"/O=gauntlet/OU={ou}/CN={name}", "-out", csr],
                       check=True, capture_output=True)
    finally:
        os.umask(old)
    subprocess.run(["openssl", "x509", "-req", "-in", csr, "-CA", os.path.join(certs, "ca.pem"),
                    "-CAkey", os.path.join(certs, "ca.key"), "-CAserial", os.path.join(ids_dir, "ca.srl"),
                    "-CAcreateserial", "-days", "7", "-sha256", "-extfile", ext, "-out", crt],
                   check=True, capture_output=True)
    os.remove(csr)


def zt_core_ids() -> list:
    ids = []
    with open(os.path.join(REPO, "scenarios", "checks", "zt-core.yaml")) as f:
        for line in f:
            if line.startswith("  - id: "):
                ids.append(line.split(":", 1)[1].strip())
    return ids


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", required=True)
    ap.add_argument("--port", required=True, type=int)
    ap.add_argument("--oracle", required=True, type=int)
    ap.add_argument("--ids", type=int, default=35)
    ap.add_argument("--protocol", default="h1")
    ap.add_argument("--rate", default="800/s")
    ap.add_argument("--duration", default="20s")
    ap.add_argument("--name", default=None)
    ap.add_argument("--mix", default="all", choices=["all", "ids", "badsig", "suite"])
    ap.add_argument("--badsig-share", type=float, default=6.0)
    ap.add_argument("--exclude", default="")
    ap.add_argument("--max-in-flight", type=int, default=64)
    ap.add_argument("--connections", type=int, default=2)
    ap.add_argument("--certs", default=os.path.join(REPO, "certs"))
    ap.add_argument("--profile", default=os.path.join(REPO, "scenarios", "targets", "reference.yaml"),
                    help="the target profile to include (default: the reference gateway's)")
    a = ap.parse_args()
    out = os.path.abspath(a.out)
    ids_dir = os.path.join(out, "ids")
    os.makedirs(ids_dir, mode=0o700, exist_ok=True)
    certs = os.path.abspath(a.certs)
    name = a.name or f"interop-{a.protocol}-{a.ids}ids"
    lines = [
        "gauntlet: 1",
        f"name: {name}",
        f"description: zt-core + {a.ids} minted identities, {a.protocol}, {a.rate} for {a.duration}",
        "include:",
        f"  - {os.path.abspath(a.profile)}",
        f"  - {REPO}/scenarios/checks/zt-core.yaml",
        "target:",
        f"  url: https://127.0.0.1:{a.port}",
        f"  ca: {certs}/ca.pem",
        "  server_name: localhost",
        f"  protocol: {a.protocol}",
        f"  max_in_flight: {a.max_in_flight}",
        f"  connections: {a.connections}",
        "  timeout: 5s",
        f'oracle: {{ listen: "127.0.0.1:{a.oracle}" }}',
        "identities:",
    ]
    checks, ids_checks = [], []
    for i in range(1, a.ids + 1):
        n = f"u{i:02d}"
        ou = GROUPS[(i - 1) % 3]
        mint(ids_dir, certs, n, ou)
        if i % 2:
            alg, key, kid = "RS256", f"{certs}/jwt-rs256.key", "rs256-1"
        else:
            alg, key, kid = "ES256", f"{certs}/jwt-es256.key", "es256-1"
        lines.append(
            f"  {n}: {{ cert: {ids_dir}/{n}.pem, key: {ids_dir}/{n}.key, token: {{ jwt: {{ alg: {alg}, "
            f"key: {key}, kid: {kid}, claims: {{ sub: {n}, groups: [{ou}], aud: gauntlet-gateway, "
            f'iss: "https://idp.gauntlet.test", exp: +1h, iat: now }} }} }} }}')
        for cid, route, path, allow in [
            (f"ID-{n}-API", "api", "/items", True),
            (f"ID-{n}-REPORTS", "reports", "/q3", ou == "finance"),
            (f"ID-{n}-ADMIN", "admin", "/users", ou == "admin"),
        ]:
            ids_checks.append(cid)
            expect = "allow" if allow else "{ deny: [403] }"
            tag = "legit" if allow else "attack"
            checks += [
                f"  - id: {cid}",
                f"    title: {n} ({ou}) GET {route}{path}",
                f"    tags: [{tag}, minted]",
                f"    identity: {n}",
                f"    request: {{ method: GET, route: {route}, path: {path} }}",
                f"    expect: {expect}",
            ]
    lines.append("checks:")
    lines += checks
    excluded = {x for x in a.exclude.split(",") if x}
    if a.mix == "ids":
        chosen = [c for c in ids_checks if c not in excluded]
    elif excluded:
        chosen = [c for c in zt_core_ids() + ids_checks if c not in excluded]
    else:
        chosen = None
    mix = "" if chosen is None else ", mix: [" + ", ".join(chosen) + "]"
    if a.mix == "suite":
        # Mostly legitimate traffic of every identity, the attacks, and the limit check driven
        # well above its limit (3 % of the rate against 5/s).
        mix = ', mix: { "tag:legit": 70, "tag:attack": 27, "tag:limit": 3 }'
    if a.mix == "badsig":
        p = a.badsig_share
        mix = (f', mix: {{ "tag:minted": {100 - p:g}, ZT-AUTHN-JWT-003: {p / 2:g}, '
               f'ZT-AUTHN-JWT-004: {p / 2:g} }}')
    bound = f"duration: {a.duration}"
    if a.mix == "suite":
        # Count-bounded: the suite judges conformance, not the machine's speed (speed is
        # bench/'s job), so a slow moment sends late instead of leaving requests unsent.
        per = {"s": 1, "m": 60}[a.rate.rsplit("/", 1)[1][0]]
        secs = float(a.duration.rstrip("s"))
        bound = f"requests: {int(float(a.rate.split('/')[0]) * secs / per)}"
    lines += ["phases:", f"  - {{ name: load, {bound}, rate: {a.rate}{mix} }}"]
    path = os.path.join(out, name + ".yaml")
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\n")
    print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
