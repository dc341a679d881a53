#!/usr/bin/python3
"""Open N keep-alive client connections to HOST:PORT, make one GET on each,
then hold them all idle so the proxy's memory per idle connection can be
measured.

    holdconns.py HOST PORT N STATUS_FILE [MAX_HOLD_SECONDS]

Writes "held=OK failed=F" to STATUS_FILE once every connection has its
response (or failed), then sleeps. On SIGTERM (or after MAX_HOLD_SECONDS,
default 120: bounded even if nobody stops us) it counts how many connections
the proxy still kept open, appends " alive=A" to STATUS_FILE and exits.
Connections are opened in batches so a proxy's listen backlog is not the
thing being measured.
"""
import errno
import os
import selectors
import signal
import socket
import sys
import time

BATCH = 250
REQUEST = b"GET / HTTP/1.1\r\nHost: bench\r\nUser-Agent: holdconns\r\n\r\n"


def response_complete(buf):
    head, sep, body = buf.partition(b"\r\n\r\n")
    if not sep:
        return False
    for line in head.split(b"\r\n")[1:]:
        k, _, v = line.partition(b":")
        k = k.strip().lower()
        if k == b"content-length":
            return len(body) >= int(v.strip())
        if k == b"transfer-encoding" and b"chunked" in v.lower():
            return body.endswith(b"0\r\n\r\n")
    return True  # no body framing: a 204/304-like answer


def run_batch(host, port, count, deadline):
    """Connect `count` sockets, request on each, wait for all responses."""
    sel = selectors.DefaultSelector()
    ok, failed = [], 0
    for _ in range(count):
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.setblocking(False)
        err = s.connect_ex((host, port))
        if err not in (0, errno.EINPROGRESS):
            s.close()
            failed += 1
            continue
        sel.register(s, selectors.EVENT_WRITE, [b"", False])
    while sel.get_map() and time.monotonic() < deadline:
        for key, ev in sel.select(timeout=0.5):
            s, state = key.fileobj, key.data
            try:
                if ev & selectors.EVENT_WRITE and not state[1]:
                    if s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR):
                        raise OSError("connect failed")
                    s.send(REQUEST)
                    state[1] = True
                    sel.modify(s, selectors.EVENT_READ, state)
                    continue
                data = s.recv(65536)
                if not data:
                    raise OSError("closed before response")
                state[0] += data
                if response_complete(state[0]):
                    sel.unregister(s)
                    ok.append(s)
            except OSError:
                sel.unregister(s)
                s.close()
                failed += 1
    for key in list(sel.get_map().values()):  # timed out
        sel.unregister(key.fileobj)
        key.fileobj.close()
        failed += 1
    return ok, failed


def still_open(s):
    try:
        data = s.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT)
        return data != b""  # b"" = proxy closed it
    except BlockingIOError:
        return True
    except OSError:
        return False


def main():
    host, port, n, status = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
    max_hold = float(sys.argv[5]) if len(sys.argv) > 5 else 120.0
    deadline = time.monotonic() + 60
    held, failed = [], 0
    while len(held) + failed < n and time.monotonic() < deadline:
        ok, bad = run_batch(host, port, min(BATCH, n - len(held) - failed), deadline)
        held += ok
        failed += bad
    with open(status + ".tmp", "w") as f:
        f.write(f"held={len(held)} failed={n - len(held)}")
    os.rename(status + ".tmp", status)

    stop = []
    signal.signal(signal.SIGTERM, lambda *_: stop.append(1))
    end = time.monotonic() + max_hold
    while not stop and time.monotonic() < end:
        time.sleep(0.1)
    alive = sum(1 for s in held if still_open(s))
    with open(status, "a") as f:
        f.write(f" alive={alive}\n")


if __name__ == "__main__":
    main()
