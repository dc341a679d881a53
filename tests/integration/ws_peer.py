"""WebSocket peers for tests/integration/websocket_test.cc (python3-websockets).

  ws_peer.py server LOG [CERT KEY]  an echo upstream on a free port (wss with CERT
                                 and KEY); prints "port N".
                                 Text "close-me" makes it close (1000, "bye");
                                 text "flood N" sends N MiB in 64 KiB binary
                                 messages, logging "sent BYTES" to LOG as it goes.
                                 GET /page is an HTML page that opens a WebSocket
                                 to /chat and shows the echo (for a browser).
  ws_peer.py client PORT CASE    a client through pasture; prints what it saw,
                                 exits non-zero on any surprise.
"""
import asyncio
import http
import os
import socket
import sys
import time

import websockets


async def echo(ws, log):
    try:
        async for msg in ws:
            if msg == "close-me":
                await ws.close(1000, "bye")
                return
            if isinstance(msg, str) and msg.startswith("stall "):
                await asyncio.sleep(float(msg.split()[1]))  # reads nothing meanwhile (max_queue 1)
                continue
            if isinstance(msg, str) and msg.startswith("flood "):
                n = int(msg.split()[1])
                chunk = b"f" * 65536
                sent = 0
                for _ in range(n * 16):
                    await ws.send(chunk)
                    sent += len(chunk)
                    with open(log, "a") as f:
                        f.write("sent %d\n" % sent)
                continue
            await ws.send(msg)
    except websockets.ConnectionClosed:
        pass


# GET /page (plain HTTP): a page whose script opens a WebSocket to /chat on
# the same origin, sends a message and shows the echo: a browser's test.
PAGE = b"""<html><body><div id=r>pending</div><script>
var ws = new WebSocket((location.protocol == 'https:' ? 'wss://' : 'ws://') + location.host + '/chat');
ws.onopen = function() { ws.send('hi from the browser'); };
ws.onmessage = function(e) { document.getElementById('r').textContent = 'echo:' + e.data; ws.close(); };
ws.onerror = function() { document.getElementById('r').textContent = 'error'; };
</script></body></html>"""


async def page(path, headers):
    if path == "/page":
        return http.HTTPStatus.OK, [("Content-Type", "text/html")], PAGE
    return None


async def serve(log, cert=None, key=None):
    tls = None
    if cert:  # a wss upstream (tests/integration/upstream_tls_test.cc)
        import ssl
        tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        tls.load_cert_chain(cert, key)
    async with websockets.serve(lambda ws, *a: echo(ws, log), "127.0.0.1", 0, max_size=None,
                                max_queue=1, ssl=tls, process_request=page) as srv:
        port = srv.sockets[0].getsockname()[1]
        print("port %d" % port, flush=True)
        await asyncio.Future()


def say(*a):
    print(*a, flush=True)


async def client(port, case):
    url = "ws://127.0.0.1:%d/ws" % port
    if case == "basic":
        async with websockets.connect(url, max_size=None) as ws:
            await ws.send("hello")
            assert await ws.recv() == "hello"
            await ws.send(b"\x00\x01\xff")
            assert await ws.recv() == b"\x00\x01\xff"
            big = os.urandom(1 << 20)
            await ws.send(big)
            assert await ws.recv() == big, "1 MB message changed"
            pong = await ws.ping(b"p1")
            await asyncio.wait_for(pong, 5)
            say("echo ok")
        assert ws.close_code == 1000, ws.close_code  # the client closed: handshake completed
        say("client close ok")
        async with websockets.connect(url) as ws:
            await ws.send("close-me")
            try:
                await asyncio.wait_for(ws.recv(), 5)
                raise AssertionError("a message after close-me")
            except websockets.ConnectionClosedOK:
                pass
            assert ws.close_code == 1000 and ws.close_reason == "bye", (ws.close_code, ws.close_reason)
        say("server close ok")
    elif case.startswith("hold"):
        secs = float(case.split(":")[1])
        async with websockets.connect(url) as ws:
            await ws.send("one")
            assert await ws.recv() == "one"
            say("OPEN")
            try:  # wait, but notice the connection ending meanwhile
                await asyncio.wait_for(ws.wait_closed(), secs)
                say("ENDED early: %s" % ws.close_code)
            except asyncio.TimeoutError:
                pass
            await ws.send("two")
            assert await asyncio.wait_for(ws.recv(), 5) == "two"
            say("STILL")
        say("CLOSED")
    elif case == "idle":
        async with websockets.connect(url, ping_interval=None) as ws:
            await ws.send("one")
            assert await ws.recv() == "one"
            t0 = time.monotonic()
            try:
                await asyncio.wait_for(ws.recv(), 10)
                raise AssertionError("a message on an idle tunnel")
            except websockets.ConnectionClosed:
                say("closed after %.1f" % (time.monotonic() - t0))
    else:
        raise SystemExit("unknown case " + case)


def slow_reader(port, log):
    """A client that asks for 96 MiB, reads nothing for 3 s, then all of it."""
    s = socket.create_connection(("127.0.0.1", port))
    s.sendall(b"GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
              b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n")
    head = b""
    while b"\r\n\r\n" not in head:
        head += s.recv(1)
    assert head.startswith(b"HTTP/1.1 101"), head
    payload = b"flood 96"
    mask = b"\x01\x02\x03\x04"
    s.sendall(bytes([0x81, 0x80 | len(payload)]) + mask +
              bytes(b ^ mask[i % 4] for i, b in enumerate(payload)))
    time.sleep(3)
    with open(log) as f:
        sent = max([int(l.split()[1]) for l in f if l.startswith("sent ")] or [0])
    say("stalled at %d" % sent)
    total = 0
    want = 96 << 20
    s.settimeout(20)
    def take(n):
        b = b""
        while len(b) < n:
            c = s.recv(min(1 << 20, n - len(b)))
            if not c:
                raise AssertionError("EOF after %d bytes" % total)
            b += c
        return b
    while total < want:  # frames: opcode, length (7 bits, 16 or 64), data
        hdr = take(2)
        n = hdr[1] & 0x7F
        if n == 126:
            n = int.from_bytes(take(2), "big")
        elif n == 127:
            n = int.from_bytes(take(8), "big")
        data = take(n)
        if hdr[0] & 0x0F == 2:
            total += len(data)
    say("read %d" % total)


def fast_writer(port):
    """Sends 1 MiB frames for 3 s while the upstream reads nothing: how many
    bytes the kernel took is bounded when pasture stops reading."""
    s = socket.create_connection(("127.0.0.1", port))
    s.sendall(b"GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
              b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n")
    head = b""
    while b"\r\n\r\n" not in head:
        head += s.recv(1)
    assert head.startswith(b"HTTP/1.1 101"), head
    def frame(op, payload):  # masked with zeros: the payload as it is
        n = len(payload)
        if n < 126:
            h = bytes([0x80 | op, 0x80 | n])
        else:
            h = bytes([0x80 | op, 0x80 | 127]) + n.to_bytes(8, "big")
        return h + b"\0\0\0\0" + payload
    s.sendall(frame(1, b"stall 6"))
    time.sleep(0.3)
    data = frame(2, b"u" * (1 << 20))
    s.setblocking(False)
    sent, end = 0, time.monotonic() + 3
    pending = memoryview(data)
    while time.monotonic() < end:
        try:
            k = s.send(pending)
            sent += k
            pending = pending[k:] if k < len(pending) else memoryview(data)
        except BlockingIOError:
            time.sleep(0.01)
    say("accepted %d" % sent)


if __name__ == "__main__":
    if sys.argv[1] == "server":
        asyncio.run(serve(*sys.argv[2:5]))
    elif sys.argv[3] == "fast":
        fast_writer(int(sys.argv[2]))
    elif sys.argv[3] == "slow":
        slow_reader(int(sys.argv[2]), sys.argv[4])
    else:
        asyncio.run(client(int(sys.argv[2]), sys.argv[3]))
