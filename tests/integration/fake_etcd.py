#!/usr/bin/env python3
"""A hostile etcd v3 JSON gateway for the discovery tests (review 22).

    fake_etcd.py MODE COUNTLOG

Listens on 127.0.0.1 (prints "port N"). /v3/kv/range answers one key
(pools/api/a = 127.0.0.2:PORT from $MEMBER) at revision 5; /v3/watch:
  compact   every watch says its revision was compacted: a client ranges
            again each time (it must not loop without a pause)
  nonl      the watch's body is 70 MiB without a newline (a client must
            refuse it, not buffer it whole)
  stallwatch  the watch is accepted and never answered (a hung etcd or
            gateway: a client must give up on it)
  stallevents the watch is created, then says nothing, while ranges asking
            for changes past revision 5 (min_mod_revision) find key b at
            revision 7: a stream stuck while etcd answers
Each range request appends a line "range" to COUNTLOG, each watch request
"watch <hasleader header> <body>".
"""
import base64
import json
import os
import socket
import sys
import threading

mode, countlog = sys.argv[1], sys.argv[2]
member = os.environ.get("MEMBER", "127.0.0.2:80")


def b64(s):
    return base64.b64encode(s.encode()).decode()


def handle(conn):
    with conn:
        data = b""
        while b"\r\n\r\n" not in data:
            d = conn.recv(65536)
            if not d:
                return
            data += d
        head, _, rest = data.partition(b"\r\n\r\n")
        length = 0
        for line in head.split(b"\r\n")[1:]:
            k, _, v = line.partition(b":")
            if k.strip().lower() == b"content-length":
                length = int(v.strip())
        while len(rest) < length:
            rest += conn.recv(65536)
        path = head.split(b" ")[1].decode()
        if path.endswith("/watch"):
            leader = b"grpc-metadata-hasleader: true" in head.lower()
            with open(countlog, "a") as f:
                f.write("watch %s %s\n" % ("hasleader" if leader else "-", rest.decode()))
            if mode == "stallwatch":
                while conn.recv(65536):
                    pass
                return
        if path.endswith("/kv/range"):
            with open(countlog, "a") as f:
                f.write("range\n")
            if b"min_mod_revision" in rest:
                kvs = [{"key": b64("/pasture/pools/api/b"), "mod_revision": "7"}] if mode == "stallevents" else []
                body = json.dumps({"header": {"cluster_id": "1", "revision": "7"}, "kvs": kvs,
                                   "count": str(len(kvs))}).encode()
            else:
                body = json.dumps({"header": {"cluster_id": "1", "revision": "5"},
                                   "kvs": [{"key": b64("/pasture/pools/api/a"), "value": b64(member),
                                            "mod_revision": "5"}], "count": "1"}).encode()
            conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n"
                         % len(body) + body)
            return
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n")
        def chunk(b):
            conn.sendall(b"%x\r\n" % len(b) + b + b"\r\n")
        try:
            if mode == "stallevents":
                chunk(json.dumps({"result": {"header": {"cluster_id": "1", "revision": "5"},
                                             "created": True}}).encode() + b"\n")
                while conn.recv(65536):
                    pass
            elif mode == "compact":
                chunk(json.dumps({"result": {"header": {"cluster_id": "1", "revision": "9"},
                                             "compact_revision": "8", "canceled": True}}).encode() + b"\n")
                conn.sendall(b"0\r\n\r\n")
            else:
                block = b"x" * (1 << 20)
                for _ in range(70):
                    chunk(block)
                conn.recv(1)
        except OSError:
            pass


s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", 0))
s.listen(64)
print("port %d" % s.getsockname()[1], flush=True)
while True:
    c, _ = s.accept()
    threading.Thread(target=handle, args=(c,), daemon=True).start()
