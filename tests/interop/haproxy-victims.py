#!/usr/bin/env python3
"""Correlates HAProxy request logs (haproxy.cfg.in's log-format) with a loopback capture to
explain each connection HAProxy ended with "SSL fatal error".

    haproxy-victims.py HAPROXY_LOG [--pcap FILE --port GATEWAY_PORT] [--show N]

For every request logged with fc_err=SSL fatal error (a *victim*), it finds the last
earlier request on the same HAProxy thread whose token went through jwt_verify and failed
(alg=RS256/ES256, sig=0) — the request that left errors on that thread's OpenSSL error
queue — and prints the delay between the two. With --pcap it adds the victim connection's
packets around the victim request: when the request arrived, when the previous response
left, when HAProxy sent its close_notify (a 24-byte TLS record) and FIN.
"""
import argparse
import collections
import datetime
import importlib.util
import os
import re
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
LINE = re.compile(
    r"^(?P<date>\d\d/\w{3}/\d{4}:\d\d:\d\d:\d\d\.\d{3}) (?P<ip>[\d.]+):(?P<cport>\d+) "
    r"(?P<Th>-?\d+)/(?P<Ti>-?\d+)/(?P<TR>-?\d+)/(?P<Tw>-?\d+)/(?P<Tc>-?\d+)/(?P<Tr>-?\d+)/(?P<Ta>-?\d+) "
    r"(?P<status>-?\d+) (?P<bytes>\d+) (?P<term>\S+) (?P<why>\S+) (?P<method>\S+) (?P<path>\S+) "
    r"(?P<tag>\S+) (?P<ver>\S+) alg=(?P<alg>\S*) sig=(?P<sig>\S*) thr=(?P<thr>\d+) "
    r"fc_err=(?P<fc_err>.*?) ssl_err=(?P<ssl_err>.*)$")


def epoch(date: str) -> float:
    d = datetime.datetime.strptime(date, "%d/%b/%Y:%H:%M:%S.%f")
    return d.replace(tzinfo=datetime.timezone.utc).timestamp()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("log")
    ap.add_argument("--pcap")
    ap.add_argument("--port", type=int)
    ap.add_argument("--show", type=int, default=2)
    ap.add_argument("--utc-offset", type=float, default=None,
                    help="hours to add to log times to match the capture (default: local zone)")
    a = ap.parse_args()
    off = a.utc_offset
    if off is None:
        off = -datetime.datetime.now().astimezone().utcoffset().total_seconds() / 3600
    reqs = []
    for raw in open(a.log, errors="replace"):
        m = LINE.match(raw.strip())
        if not m:
            continue
        r = m.groupdict()
        t = epoch(r["date"]) + off * 3600
        # first byte of the request header: accept (or end of the previous request) + handshake + idle
        r["recv"] = t + (max(int(r["Th"]), 0) + max(int(r["Ti"]), 0)) / 1000
        r["line"] = raw.strip()
        reqs.append(r)
    reqs.sort(key=lambda r: r["recv"])
    polluters = collections.defaultdict(list)  # thread -> [(recv, req)]
    victims = []
    on_conn = collections.Counter()
    for r in reqs:
        r["nth"] = on_conn[r["cport"]]  # requests logged before it on its connection
        on_conn[r["cport"]] += 1
        if r["fc_err"].startswith("SSL fatal"):
            prior = polluters[r["thr"]]
            victims.append((r, prior[-1] if prior else None))
        if r["alg"] in ("RS256", "ES256") and r["sig"] == "0":
            polluters[r["thr"]].append(r)
    by_alg = collections.Counter(p["alg"] if p else "none" for _, p in victims)
    delays = sorted((v["recv"] - p["recv"]) * 1000 for v, p in victims if p)
    failed = collections.Counter(r["alg"] for rs in polluters.values() for r in rs)
    print(f"requests logged: {len(reqs)}; failed jwt_verify by alg: {dict(failed)}")
    print(f"victims (fc_err=SSL fatal error): {len(victims)}; their ssl_err: "
          f"{dict(collections.Counter(v['ssl_err'] for v, _ in victims))}")
    print(f"victims whose thread had an earlier failed jwt_verify, by its alg: {dict(by_alg)}")
    if delays:
        print(f"delay from that failed verification to the victim request: median {delays[len(delays) // 2]:.1f} ms, "
              f"max {delays[-1]:.1f} ms")
    print(f"victims by logged status/termination: "
          f"{dict(collections.Counter((v['status'], v['term']) for v, _ in victims))}")
    reused = sum(1 for v, _ in victims if v["nth"])
    print(f"victims on a kept-alive connection (earlier requests answered on it): {reused}; "
          f"on a new connection: {len(victims) - reused}")
    # examples: kept-alive victims first (the reported pattern), then new-connection ones
    victims.sort(key=lambda vp: (vp[0]["nth"] == 0, vp[0]["recv"]))
    pc = None
    if a.pcap:
        spec = importlib.util.spec_from_file_location("pc", os.path.join(HERE, "pcap-conns.py"))
        pc = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(pc)
        want = {int(v["cport"]) for v, _ in victims[: a.show]}
        conns = collections.defaultdict(list)
        for t, sp, dp, _seq, fl, plen, _pay in pc.packets(a.pcap):
            if dp == a.port and sp in want:
                conns[sp].append((t, "->", fl, plen))
            elif sp == a.port and dp in want:
                conns[dp].append((t, "<-", fl, plen))
    for v, p in victims[: a.show]:
        print("\n== victim", v["cport"], v["tag"], "status", v["status"], v["term"], "thr", v["thr"],
              f"({v['nth']} earlier requests on this connection)")
        print("   log:", v["line"])
        if p:
            print(f"   polluter ({(v['recv'] - p['recv']) * 1000:.1f} ms earlier, same thread, other connection"
                  f"{'' if p['cport'] != v['cport'] else ' (SAME connection)'}):")
            print("   log:", p["line"])
        if pc is not None:
            base = v["recv"]
            print("   capture (ms relative to the victim request's logged arrival):")
            ev = conns.get(int(v["cport"]), [])
            for t, d, fl, plen in ev:
                if t < base - 2.0 and plen == 0:
                    continue
                names = "".join(c for b, c in ((2, "S"), (16, "."), (1, "F"), (4, "R"), (8, "P")) if fl & b)
                note = ""
                if d == "<-" and plen == 24:
                    note = "  TLS record of 19 bytes: encrypted alert (close_notify)"
                elif plen:
                    note = "  request" if d == "->" else "  response/TLS data"
                print(f"   {1000 * (t - base):10.3f}  {d} {names:4s} len {plen:5d}{note}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
