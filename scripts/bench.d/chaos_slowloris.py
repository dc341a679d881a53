#!/usr/bin/python3
"""Slowloris for scripts/chaos: N connections that each send one more byte
of a request head every INTERVAL seconds and never finish it.

    chaos_slowloris.py PORT N INTERVAL STATUS_FILE

Connects in batches of 200 (a proxy's listen backlog is not what is tested),
sends each connection its first byte at once, then one byte per connection
per INTERVAL, spread evenly over the interval. Writes "opened=O failed=F"
to STATUS_FILE once every connection is open (or failed); on SIGTERM
appends what became of them: "open=A closed=C answered=R reset=X" (closed:
the proxy sent EOF; answered: it sent bytes, e.g. a 408; reset: RST), then
exits.
"""
import errno
import os
import selectors
import signal
import socket
import sys
import time

HEAD = b"GET / HTTP/1.1\r\nHost: slowloris\r\nX-Slow: " + b"a" * 4000
BATCH = 200


def open_batch(port, count, deadline):
    sel = selectors.DefaultSelector()
    ok, failed = [], 0
    for _ in range(count):
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.setblocking(False)
        if s.connect_ex(("127.0.0.1", port)) not in (0, errno.EINPROGRESS):
            s.close()
            failed += 1
            continue
        sel.register(s, selectors.EVENT_WRITE)
    while sel.get_map() and time.monotonic() < deadline:
        for key, _ in sel.select(timeout=0.5):
            s = key.fileobj
            sel.unregister(s)
            if s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR) == 0:
                ok.append(s)
            else:
                s.close()
                failed += 1
    for key in list(sel.get_map().values()):
        key.fileobj.close()
        failed += 1
    return ok, failed


def fate(s):
    try:
        data = s.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT)
        return "closed" if data == b"" else "answered"
    except BlockingIOError:
        return "open"
    except OSError:
        return "reset"


def main():
    port, n, interval, status = int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3]), sys.argv[4]
    stop = []
    signal.signal(signal.SIGTERM, lambda *_: stop.append(1))
    deadline = time.monotonic() + 30
    socks, failed = [], 0
    while len(socks) + failed < n and time.monotonic() < deadline and not stop:
        ok, bad = open_batch(port, min(BATCH, n - len(socks) - failed), deadline)
        socks += ok
        failed += bad
    sent = [0] * len(socks)

    def send_one(i):
        if sent[i] < len(HEAD):
            try:
                socks[i].send(HEAD[sent[i]:sent[i] + 1])
                sent[i] += 1
            except OSError:
                pass  # its fate is read at the end

    for i in range(len(socks)):
        send_one(i)
    with open(status + ".tmp", "w") as f:
        f.write(f"opened={len(socks)} failed={n - len(socks)}")
    os.rename(status + ".tmp", status)
    slices = 20
    i = 0
    while not stop:
        time.sleep(interval / slices)
        for _ in range(max(1, len(socks) // slices)):
            if socks:
                send_one(i % len(socks))
                i += 1
    counts = {"open": 0, "closed": 0, "answered": 0, "reset": 0}
    for s in socks:
        counts[fate(s)] += 1
    with open(status, "a") as f:
        f.write(" " + " ".join(f"{k}={v}" for k, v in counts.items()) + "\n")


if __name__ == "__main__":
    main()
