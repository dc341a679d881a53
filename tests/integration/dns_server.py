#!/usr/bin/env python3
"""A DNS server for the discovery tests (python3-dnslib), on loopback.

    dns_server.py ZONE.json QUERYLOG

Answers UDP and TCP on one port of 127.0.0.1 and prints "port N" once
listening. The zone is a JSON file read again at every query, so the test
changes the records under load by rewriting it (atomically: write + rename):

    {"ttl": 5,                                   # TTL of every record
     "mode": "ok",                               # ok | servfail | nxdomain | drop (no answer) | refused
     "drop_types": ["AAAA"],                     # query types never answered (default none)
     "truncate": false,                          # UDP answers come truncated (TC): the client must use TCP
     "a":    {"app.test": ["127.0.0.2"]},
     "aaaa": {"app.test": ["::1"]},
     "srv":  {"_http._tcp.app.test": [[priority, weight, port, "target.test"]]},
     "additional": true,                         # SRV answers carry the targets' A/AAAA records
     "cname": {"alias.test": "app.test"},        # a CNAME first, then the target's records
     "extra_answer": [["other.test", "A", "127.0.0.9"]],      # more answer records, for queries of their type
     "extra_additional": [["app.test", "A", "127.0.0.9"]],    # more additional records, in every answer
     "question": "other.test",                   # the question echoed with this name instead
     "tcp_bad_id": true}                         # TCP answers carry another ID

Each query is appended to QUERYLOG as "<unix time> <name> <type> <transport>".
"""
import json
import socket
import struct
import sys
import threading
import time

from dnslib import AAAA, CNAME, QTYPE, RCODE, RR, SRV, A, DNSLabel, DNSRecord

zone_path, log_path = sys.argv[1], sys.argv[2]
log_lock = threading.Lock()


def load_zone():
    try:
        with open(zone_path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return {}


def answer(data, transport):
    request = DNSRecord.parse(data)
    q = request.q
    name = str(q.qname).rstrip(".").lower()
    qtype = QTYPE[q.qtype]
    with log_lock, open(log_path, "a") as f:
        f.write("%.3f %s %s %s\n" % (time.time(), name, qtype, transport))
    zone = load_zone()
    mode = zone.get("mode", "ok")
    if mode == "drop" or qtype in zone.get("drop_types", []):
        return None
    reply = request.reply()
    if mode in ("servfail", "nxdomain", "refused"):
        reply.header.rcode = {"servfail": RCODE.SERVFAIL, "nxdomain": RCODE.NXDOMAIN,
                              "refused": RCODE.REFUSED}[mode]
        return reply.pack()
    ttl = int(zone.get("ttl", 5))
    if transport == "udp" and zone.get("truncate"):
        reply.header.tc = 1
        return reply.pack()
    known = any(name in zone.get(k, {}) for k in ("a", "aaaa", "srv", "cname"))
    if not known:
        reply.header.rcode = RCODE.NXDOMAIN
        return reply.pack()
    owner = q.qname
    if name in zone.get("cname", {}):
        name = zone["cname"][name]
        reply.add_answer(RR(owner, QTYPE.CNAME, rdata=CNAME(name), ttl=ttl))
        owner = DNSLabel(name)
    if qtype == "A":
        for ip in zone.get("a", {}).get(name, []):
            reply.add_answer(RR(owner, QTYPE.A, rdata=A(ip), ttl=ttl))
    elif qtype == "AAAA":
        for ip in zone.get("aaaa", {}).get(name, []):
            reply.add_answer(RR(owner, QTYPE.AAAA, rdata=AAAA(ip), ttl=ttl))
    elif qtype == "SRV":
        for prio, weight, port, target in zone.get("srv", {}).get(name, []):
            reply.add_answer(RR(owner, QTYPE.SRV, rdata=SRV(prio, weight, port, target), ttl=ttl))
            if zone.get("additional"):
                for ip in zone.get("a", {}).get(target, []):
                    reply.add_ar(RR(target, QTYPE.A, rdata=A(ip), ttl=ttl))
                for ip in zone.get("aaaa", {}).get(target, []):
                    reply.add_ar(RR(target, QTYPE.AAAA, rdata=AAAA(ip), ttl=ttl))
    for rr_owner, rr_type, value in zone.get("extra_answer", []):
        if rr_type == qtype:
            reply.add_answer(RR(rr_owner, getattr(QTYPE, rr_type), rdata=rdata(rr_type, value), ttl=ttl))
    for rr_owner, rr_type, value in zone.get("extra_additional", []):
        reply.add_ar(RR(rr_owner, getattr(QTYPE, rr_type), rdata=rdata(rr_type, value), ttl=ttl))
    if zone.get("question"):
        reply.q.qname = DNSLabel(zone["question"])
    if transport == "tcp" and zone.get("tcp_bad_id"):
        reply.header.id ^= 1
    return reply.pack()


def rdata(rr_type, value):
    if rr_type == "SRV":
        return SRV(*value)
    return {"A": A, "AAAA": AAAA}[rr_type](value)


def serve_udp(sock):
    while True:
        data, peer = sock.recvfrom(4096)
        try:
            out = answer(data, "udp")
        except Exception as e:  # a malformed query: ignored, as a server would
            sys.stderr.write("dns_server: %r\n" % e)
            continue
        if out is not None:
            sock.sendto(out, peer)


def serve_tcp_conn(conn):
    with conn:
        while True:
            head = conn.recv(2)
            if len(head) < 2:
                return
            (n,) = struct.unpack("!H", head)
            data = b""
            while len(data) < n:
                chunk = conn.recv(n - len(data))
                if not chunk:
                    return
                data += chunk
            out = answer(data, "tcp")
            if out is None:
                return
            conn.sendall(struct.pack("!H", len(out)) + out)


def serve_tcp(sock):
    while True:
        conn, _ = sock.accept()
        threading.Thread(target=serve_tcp_conn, args=(conn,), daemon=True).start()


def bind_pair():
    for _ in range(50):
        udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        udp.bind(("127.0.0.1", 0))
        port = udp.getsockname()[1]
        tcp = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        tcp.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            tcp.bind(("127.0.0.1", port))
        except OSError:
            udp.close()
            tcp.close()
            continue
        tcp.listen(16)
        return udp, tcp, port
    raise SystemExit("dns_server: no free port for UDP and TCP")


def main():
    udp, tcp, port = bind_pair()
    threading.Thread(target=serve_tcp, args=(tcp,), daemon=True).start()
    print("port %d" % port, flush=True)
    serve_udp(udp)


if __name__ == "__main__":
    main()
