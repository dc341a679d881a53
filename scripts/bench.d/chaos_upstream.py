#!/usr/bin/python3
"""A small HTTP/1.1 upstream for scripts/chaos (asyncio, one process).

    chaos_upstream.py PORT NAME

  GET /big   a 32 MiB body (BIG_BYTES), written with back-pressure
  GET other  200, a 64-byte body naming the server (X-Upstream: NAME too)

Keep-alive, without an idle timeout: a server closing idle connections
races the proxies that reuse them, which would be a fault of its own.
SIGHUP closes every idle connection at once, so that scripts/chaos can count
a proxy's fds without its idle upstream connections.

SIGUSR1 turns "stall" on: each answer to a non-/big request then stops
mid-response (the head and half the body are sent, then nothing), until
SIGUSR2 turns it off and closes the stalled connections. Prints
"listening on PORT" once it accepts.
"""
import asyncio
import signal
import sys

BIG_BYTES = 32 * 1024 * 1024
CHUNK = 256 * 1024


class State:
    stall = False
    stalled = set()  # transports held mid-response


class Conn(asyncio.Protocol):
    def __init__(self, name, conns):
        self.name = name
        self.conns = conns
        self.buf = b""
        self.transport = None
        self.busy = False           # a /big body or a stall in progress
        self.can_write = asyncio.Event()
        self.can_write.set()

    def connection_made(self, transport):
        self.transport = transport
        self.conns.add(self)

    def connection_lost(self, exc):
        self.conns.discard(self)
        State.stalled.discard(self.transport)
        self.can_write.set()

    def pause_writing(self):
        self.can_write.clear()

    def resume_writing(self):
        self.can_write.set()

    def data_received(self, data):
        self.buf += data
        while not self.busy:
            end = self.buf.find(b"\r\n\r\n")
            if end < 0:
                return
            head, self.buf = self.buf[:end], self.buf[end + 4:]
            lines = head.split(b"\r\n")
            parts = lines[0].split(b" ")
            length = 0
            for line in lines[1:]:
                k, _, v = line.partition(b":")
                if k.strip().lower() == b"content-length":
                    length = int(v.strip())
            self.buf = self.buf[length:]  # request bodies are not used
            self.respond(parts[1] if len(parts) > 1 else b"/")

    def respond(self, target):
        t = self.transport
        if target.startswith(b"/big"):
            self.busy = True
            t.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\n"
                    b"Content-Length: %d\r\nX-Upstream: %s\r\n\r\n" % (BIG_BYTES, self.name))
            asyncio.get_running_loop().create_task(self.send_big())
            return
        body = (b"%s %s" % (self.name, target[:40])).ljust(63) + b"\n"
        head = (b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: %d\r\n"
                b"X-Upstream: %s\r\n\r\n" % (len(body), self.name))
        if State.stall:
            self.busy = True
            t.write(head + body[:32])
            State.stalled.add(t)
            return
        t.write(head + body)

    async def send_big(self):
        block = b"x" * CHUNK
        left = BIG_BYTES
        while left > 0 and not self.transport.is_closing():
            await self.can_write.wait()
            n = min(left, CHUNK)
            self.transport.write(block[:n])
            left -= n
        self.busy = False
        if self.buf:
            self.data_received(b"")


def stall_off():
    State.stall = False
    for t in list(State.stalled):
        t.close()
    State.stalled.clear()


def close_idle(conns):
    for c in list(conns):
        if not c.busy and not c.buf:
            c.transport.close()


async def main():
    port, name = int(sys.argv[1]), sys.argv[2].encode()
    loop = asyncio.get_running_loop()
    conns = set()
    server = await loop.create_server(lambda: Conn(name, conns), "127.0.0.1", port,
                                      backlog=4096, reuse_address=True)
    loop.add_signal_handler(signal.SIGUSR1, lambda: setattr(State, "stall", True))
    loop.add_signal_handler(signal.SIGUSR2, stall_off)
    stop = asyncio.Event()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    loop.add_signal_handler(signal.SIGHUP, close_idle, conns)
    print(f"listening on {port}", flush=True)
    await stop.wait()
    server.close()


if __name__ == "__main__":
    asyncio.run(main())
