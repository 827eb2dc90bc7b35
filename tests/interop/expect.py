#!/usr/bin/env python3
"""Asserts what gauntlet must conclude about one interop gateway, from its results folder.

    expect.py GATEWAY RESULTS_DIR [--min-rps 1000] [--min-identities 30]

Each gateway is described by what its configuration here enforces (FINDINGS.md, "What each
configuration enforces"); the checks it cannot pass are listed with the violation they must
show, and every other check must pass. Also: no request without an answer (no error of
gauntlet's own), every request in exactly one bucket, the rate and identity count reached.
Exits 1 with the differences, 0 when everything holds.
"""
import argparse
import json
import os
import sys

MTLS_AFTER_HANDSHAKE = {f"ZT-AUTHN-MTLS-00{i}": "wrong_status" for i in range(1, 6)}
EXPECTED_FAILURES = {
    # mTLS at the handshake, JWT, RBAC, path hygiene, header hygiene, rate limit per sub.
    "haproxy": {},
    # Verifies client certificates but answers 400 after the handshake instead of refusing it.
    "nginx": MTLS_AFTER_HANDSHAKE,
    # Everything it claims (scenarios/targets/caddy.yaml) holds.
    "caddy": {},
}
# Checks outside what each profile claims: skipped, never sent. Caddy claims neither `jwt`
# nor `rate-limit` (stock Caddy 2.6 has neither): every JWT check, the certificate-bound
# token check (mtls + jwt) and the limit check.
NO_JWT = [
    "ZT-AUTHN-JWT-001", "ZT-AUTHN-JWT-001-BASIC", "ZT-AUTHN-JWT-002", "ZT-AUTHN-JWT-003",
    "ZT-AUTHN-JWT-003-STRIP", "ZT-AUTHN-JWT-004", "ZT-AUTHN-JWT-005", "ZT-AUTHN-JWT-006",
    "ZT-AUTHN-JWT-007", "ZT-AUTHN-JWT-008", "ZT-AUTHN-JWT-009", "ZT-AUTHN-JWT-010",
    "ZT-AUTHN-JWT-013", "ZT-AUTHN-MTLS-008",
]
EXPECTED_SKIPPED = {"haproxy": [], "nginx": [], "caddy": NO_JWT + ["ZT-DOS-RATE-001"]}
# Requests a gateway is known to lose even after the one retry, per 1,000 sent: HAProxy
# 2.6.12's jwt_verify defect (FINDINGS.md, "why HAProxy resets") drops a few answers of the
# connections a failed RS256 verification lands on — a handful per 22,000, more in some runs
# (9 seen). A check whose only shortfall is such drops may come out inconclusive (above its
# error budget): that is gauntlet reporting the gateway's defect, so it is noted, not a
# difference. Everyone else: at most one loss per 5,000, and none may decide a check.
KNOWN_DROPS_PER_1000 = {"haproxy": 1.0}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("gateway", choices=sorted(EXPECTED_FAILURES))
    ap.add_argument("results")
    ap.add_argument("--min-rps", type=float, default=1000)
    ap.add_argument("--min-identities", type=int, default=30)
    a = ap.parse_args()
    s = json.load(open(os.path.join(a.results, "summary.json")))
    problems = []
    want = EXPECTED_FAILURES[a.gateway]
    got = {}
    skipped = {c["id"] for c in s["checks"] if c["result"] == "skipped"}
    if skipped != set(EXPECTED_SKIPPED[a.gateway]):
        problems.append(f"skipped {sorted(skipped)}, expected {sorted(EXPECTED_SKIPPED[a.gateway])}")
    def dropped(m):
        return "on the retry" in m or ("closed" in m and "answering" in m)
    tolerated = []
    for c in s["checks"]:
        if c["result"] in ("pass", "skipped"):
            continue
        only_drops = c["result"] == "inconclusive" and all(dropped(e["message"]) for e in c.get("error_causes", [])) \
            and c.get("error_causes") and a.gateway in KNOWN_DROPS_PER_1000
        if only_drops:
            tolerated.append(c["id"])
            continue
        kinds = sorted(k for k, n in c["violations"].items() if k != "total" and n > 0)
        got[c["id"]] = "+".join(kinds) or c["result"]
        if c["id"] not in want:
            problems.append(f"{c['id']}: {c['result']} ({c.get('reason', '')}), expected pass")
        elif want[c["id"]] not in kinds:
            problems.append(f"{c['id']}: {got[c['id']]}, expected {want[c['id']]}")
    for cid, kind in want.items():
        if cid not in got:
            problems.append(f"{cid}: passed, expected it to fail with {kind}")
    req = s["requests"]
    # Unanswered requests: none of gauntlet's own. The only ones tolerated are the gateway
    # closing a connection without answering even the one retry on a new connection (the
    # HAProxy 2.6.12 jwt_verify defect, FINDINGS.md), and only a handful.
    causes = [e for c in s["checks"] for e in c.get("error_causes", [])]
    gateway_drops = sum(e["count"] for e in causes if dropped(e["message"]))
    allowed_drops = max(1, int(req["sent"] * KNOWN_DROPS_PER_1000.get(a.gateway, 0.2) / 1000))
    if req["errors"] != gateway_drops:
        problems.append(f"{req['errors']} request(s) without an answer: {causes}")
    elif gateway_drops > allowed_drops:
        problems.append(f"{gateway_drops} request(s) lost by the gateway even after the retry (at most {allowed_drops} expected)")
    if s["outcomes"]["total"] != req["sent"]:
        problems.append(f"buckets add up to {s['outcomes']['total']}, not to {req['sent']} sent")
    rps = max((p["achieved_rps"] for p in s["phases"]), default=0)
    # Speed is measured in bench/, not asserted here: a slow machine is noted, not a finding.
    slow = rps < a.min_rps
    identities = len({c["identity"] for c in s["checks"] if c["sent"] > 0})
    if identities < a.min_identities:
        problems.append(f"{identities} identities sent, below {a.min_identities}")
    if req["unsent"]:
        problems.append(f"{req['unsent']} scheduled requests unsent")
    verdict = s["verdict"]
    expected_verdict = "fail" if want or tolerated else "pass"
    if verdict != expected_verdict:
        problems.append(f"verdict {verdict}, expected {expected_verdict}: {s['reasons']}")
    line = (f"interop {a.gateway:<8} {s['target']['protocol']}: {req['sent']} sent at {rps}/s, "
            f"{identities} identities, {req['errors']} errors ({gateway_drops} dropped twice by the gateway), {req['stale_retries']} retried after the "
            f"gateway closed a connection unanswered, verdict {verdict.upper()}, failing {sorted(got)}, "
            f"skipped (outside its declared scope) {len(skipped)}")
    print(line)
    for n in s.get("notes", []):
        print(f"  note: {n}")
    for cid in tolerated:
        print(f"  note: {cid} is inconclusive only because the gateway lost answers even after the retry "
              f"(its known defect, FINDINGS.md): gauntlet reports the gateway, as it should")
    if slow:
        print(f"  note: achieved {rps}/s, below the {a.min_rps}/s offered-rate target: this machine or the gateway "
              f"could not keep up (requests were sent late, none left unsent; not a conformance finding)")
    for p in problems:
        print(f"  UNEXPECTED: {p}")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
