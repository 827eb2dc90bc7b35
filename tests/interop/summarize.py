#!/usr/bin/env python3
"""One-screen digest of a gauntlet results folder's summary.json: requests, errors by kind,
violations by kind, the checks with errors or violations.

    summarize.py RESULTS_DIR [--top N] [--json]
"""
import argparse
import json
import os
import sys


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("results")
    ap.add_argument("--top", type=int, default=12)
    ap.add_argument("--json", action="store_true", help="print the digest as one JSON line")
    a = ap.parse_args()
    s = json.load(open(os.path.join(a.results, "summary.json")))
    req = s["requests"]
    errs = {k: v for k, v in s["errors"].items() if v}
    viol = {k: v for k, v in s["violations"].items() if v and k != "total"} if isinstance(s["violations"], dict) else s["violations"]
    checks = s["checks"]
    bad = sorted(((c["errors"], c["violations"]["total"], c["id"], c["expect"], c["statuses"]) for c in checks
                  if c["errors"] or c["violations"]["total"]), reverse=True)
    digest = {
        "scenario": s["scenario"]["name"] if isinstance(s.get("scenario"), dict) else s.get("scenario"),
        "target": s.get("target"),
        "sent": req["sent"], "completed": req["completed"], "errors": req["errors"],
        "error_rate": round(req["errors"] / req["sent"], 4) if req["sent"] else 0,
        "errors_by_kind": errs, "violations_by_kind": viol,
        "achieved_rps": s.get("achieved_rps"), "verdict": s.get("verdict"),
    }
    if a.json:
        print(json.dumps(digest))
        return 0
    for k, v in digest.items():
        print(f"{k:18s} {v}")
    print(f"checks with errors or violations: {len(bad)}")
    for e, v, cid, exp, st in bad[: a.top]:
        print(f"  {cid:26s} expect {exp:10s} errors {e:4d} violations {v:4d} statuses {st}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
