#!/usr/bin/env python3
"""Per-connection timelines from a loopback capture of TLS traffic to a gateway
(`tcpdump -i lo -s 160 -w FILE 'tcp port PORT'`; classic pcap, Ethernet or Linux SLL).

    pcap-conns.py FILE PORT [--show N] [--conn CLIENT_PORT]

For each TCP connection (keyed by the client port) it tracks client records (requests) and
server records, FIN/RST, and flags connections where the *server* closed (FIN) after the
client had sent a request that got no response. TLS 1.3 hides record types, so records are
told apart by size: a 24-byte record (5-byte header + 19: 2-byte alert, type byte, 16-byte
tag) is an encrypted alert — close_notify at the end of a connection.

Prints a summary and, for the first N such connections (or the one asked for), the event
list with times relative to the first packet of the connection.
"""
import argparse
import struct
import sys
from collections import defaultdict


def packets(path):
    with open(path, "rb") as f:
        hdr = f.read(24)
        magic = struct.unpack("<I", hdr[:4])[0]
        if magic in (0xA1B2C3D4, 0xA1B23C4D):
            end = "<"
        else:
            end = ">"
            magic = struct.unpack(">I", hdr[:4])[0]
        nano = magic == 0xA1B23C4D
        linktype = struct.unpack(end + "I", hdr[20:24])[0]
        while True:
            ph = f.read(16)
            if len(ph) < 16:
                return
            sec, frac, incl, _orig = struct.unpack(end + "IIII", ph)
            data = f.read(incl)
            t = sec + frac / (1e9 if nano else 1e6)
            if linktype == 1:  # Ethernet
                if len(data) < 14 or data[12:14] != b"\x08\x00":
                    continue
                ip = data[14:]
            elif linktype == 113:  # Linux cooked
                ip = data[16:]
            elif linktype == 276:  # Linux cooked v2
                ip = data[20:]
            else:
                ip = data
            if len(ip) < 20 or ip[0] >> 4 != 4 or ip[9] != 6:
                continue
            ihl = (ip[0] & 15) * 4
            total = struct.unpack(">H", ip[2:4])[0]
            tcp = ip[ihl:]
            if len(tcp) < 20:
                continue
            sport, dport, seq, _ack = struct.unpack(">HHII", tcp[:12])
            off = (tcp[12] >> 4) * 4
            flags = tcp[13]
            plen = total - ihl - off
            payload = tcp[off:]
            yield t, sport, dport, seq, flags, plen, payload


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("pcap")
    ap.add_argument("port", type=int)
    ap.add_argument("--show", type=int, default=3)
    ap.add_argument("--conn", type=int, default=None)
    a = ap.parse_args()
    conns = defaultdict(list)  # client port -> [(t, dir, flags, plen, first5)]
    for t, sp, dp, seq, flags, plen, payload in packets(a.pcap):
        if dp == a.port:
            conns[sp].append((t, "C", flags, plen, payload[:5]))
        elif sp == a.port:
            conns[dp].append((t, "S", flags, plen, payload[:5]))
    server_fin_after_req = []
    stats = defaultdict(int)
    for cp, ev in conns.items():
        stats["connections"] += 1
        # Walk data segments: a client data segment after the handshake is a request (or more);
        # a server data segment answers it. Look for: client data, then server FIN with no
        # server data bigger than an alert in between.
        pending = None  # time of an unanswered client request
        handshake_done = False
        client_data = 0
        server_fin = None
        fin_first = None
        for t, d, fl, plen, first in ev:
            fin = fl & 1
            rst = fl & 4
            if d == "C" and plen > 0:
                client_data += 1
                if client_data >= 2:  # after ClientHello and the client's Finished/cert flight
                    handshake_done = True
                if handshake_done:
                    pending = t
            if d == "S" and plen > 24 and handshake_done:
                pending = None
            if fin and fin_first is None:
                fin_first = d
            if d == "S" and fin:
                server_fin = t
                if pending is not None:
                    server_fin_after_req.append(cp)
            if rst:
                stats["rst_" + d] += 1
        stats["fin_first_" + str(fin_first)] += 1
    print(f"connections: {stats['connections']}, first FIN by server: {stats['fin_first_S']}, "
          f"by client: {stats['fin_first_C']}, no FIN: {stats['fin_first_None']}, "
          f"RST from client: {stats['rst_C']}, from server: {stats['rst_S']}")
    print(f"connections where the server sent FIN while a client request was unanswered: "
          f"{len(server_fin_after_req)}")
    show = [a.conn] if a.conn else server_fin_after_req[: a.show]
    for cp in show:
        ev = conns.get(cp, [])
        if not ev:
            continue
        t0 = ev[0][0]
        print(f"\n-- connection from client port {cp} (t0 = {t0:.6f})")
        last_s_data = None
        for t, d, fl, plen, first in ev:
            names = "".join(n for b, n in ((2, "S"), (16, "."), (1, "F"), (4, "R"), (8, "P")) if fl & b)
            rec = ""
            if plen and len(first) >= 5 and first[0] in (20, 21, 22, 23):
                rlen = struct.unpack(">H", first[3:5])[0]
                kind = {20: "ccs", 21: "alert", 22: "handshake", 23: "appdata"}[first[0]]
                rec = f" tls {kind} len {rlen}"
                if first[0] == 23 and rlen == 19:
                    rec += " (encrypted alert: close_notify)"
            gap = ""
            if d == "S" and plen:
                last_s_data = t
            print(f"  {1000 * (t - t0):10.3f} ms  {'->' if d == 'C' else '<-'} {names:5s} len {plen:5d}{rec}{gap}")


if __name__ == "__main__":
    sys.exit(main())
