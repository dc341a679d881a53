#!/usr/bin/python3
"""Keep-alive load for scripts/chaos that never retries, with every
request's outcome counted by cause and latency kept per phase.

    chaos_load.py PORT CONNS [PER_CONN] [TIMEOUT_S]

CONNS connections each send GET / the moment the previous answer is read
(as wrk does); after PER_CONN answers (default 100; 0 = never) a connection
is closed and a new one opened, so connections keep moving between workers
as a client's pool does. Like Python's http.client it never resends: a
request that ends without a complete answer is a failure, named by what the
client saw:

  connect refused / connect timeout / connect error (ERRNO)
  send failed          the request could not be written (reset, EPIPE)
  closed before response   EOF before any byte of the answer
  reset before response    ECONNRESET before any byte of the answer
  truncated response   EOF or reset after part of the answer
  timeout              no complete answer within TIMEOUT_S (default 10)
  status NNN           any answer but 2xx

A connection is replaced after a failure or an answer with
"Connection: close". After a failed connect it waits 50 ms before trying
again (each try counts). Each outcome goes to the phase current when it
completed.

Commands, one per line on stdin:
  phase NAME    start a new phase (the previous one ends now)
  pause         close every connection after its current request and wait;
                prints "paused" once none is open
  resume        start again; prints "resumed"
  stop          prints "result JSON" (every phase: sent, ok, failures by
                cause, latencies of the 2xx answers (and the second of the
                phase each completed in) and of the failures in ms, the
                first 200 failures as [seconds into the phase,
                cause]) and exits
"""
import asyncio
import errno
import json
import os
import sys
import time

REQUEST = b"GET / HTTP/1.1\r\nHost: chaos\r\nUser-Agent: chaos-load\r\n\r\n"


class Phase:
    def __init__(self, name):
        self.name = name
        self.start = time.monotonic()
        self.end = None
        self.sent = 0
        self.ok = 0
        self.fail = {}
        self.lat = []
        self.lat_s = []  # the second of the phase each 2xx answer completed in
        self.fail_ms = []
        self.events = []

    def record(self, cause, ms):
        self.sent += 1
        if cause is None:
            self.ok += 1
            self.lat.append(round(ms, 3))
            self.lat_s.append(int(time.monotonic() - self.start))
            return
        self.fail[cause] = self.fail.get(cause, 0) + 1
        self.fail_ms.append(round(ms, 3))
        if len(self.events) < 200:
            self.events.append([round(time.monotonic() - self.start, 3), cause])

    def as_dict(self):
        return {"name": self.name, "seconds": round((self.end or time.monotonic()) - self.start, 3),
                "sent": self.sent, "ok": self.ok, "fail": self.fail, "lat_ms": self.lat, "lat_s": self.lat_s,
                "fail_ms": self.fail_ms,
                "events": self.events}


class Failed(Exception):
    def __init__(self, cause):
        super().__init__(cause)
        self.cause = cause


def err_name(e):
    return errno.errorcode.get(e.errno, str(e.errno)) if getattr(e, "errno", None) else type(e).__name__


async def read_response(reader):
    """Reads one answer; returns (status, keep_alive). Raises Failed."""
    got = 0

    async def read(coro):
        nonlocal got
        try:
            data = await coro
        except asyncio.IncompleteReadError as e:
            raise Failed("closed before response" if got + len(e.partial) == 0 else "truncated response")
        except (ConnectionResetError, BrokenPipeError) as e:
            raise Failed("reset before response" if got == 0 else "truncated response") from e
        except asyncio.LimitOverrunError:
            raise Failed("malformed response")
        got += len(data)
        return data

    head = await read(reader.readuntil(b"\r\n\r\n"))
    lines = head.split(b"\r\n")
    try:
        status = int(lines[0].split(b" ")[1])
    except (IndexError, ValueError):
        raise Failed("malformed response")
    length, chunked, close = None, False, lines[0].startswith(b"HTTP/1.0")
    for line in lines[1:]:
        k, _, v = line.partition(b":")
        k, v = k.strip().lower(), v.strip().lower()
        if k == b"content-length":
            length = int(v)
        elif k == b"transfer-encoding" and b"chunked" in v:
            chunked = True
        elif k == b"connection":
            close = b"close" in v
    if chunked:
        while True:
            size = int((await read(reader.readuntil(b"\r\n"))).split(b";")[0], 16)
            await read(reader.readexactly(size + 2) if size else reader.readuntil(b"\r\n"))
            if size == 0:
                break
    elif length is not None:
        await read(reader.readexactly(length))
    elif status not in (204, 304):
        await read(reader.read())  # close-delimited
        close = True
    return status, not close


class Load:
    def __init__(self, port, conns, per_conn, timeout):
        self.port, self.per_conn, self.timeout = port, per_conn, timeout
        self.phases = [Phase("start")]
        self.running = asyncio.Event()
        self.running.set()
        self.open = 0
        self.idle = asyncio.Event()
        self.tasks = [asyncio.get_running_loop().create_task(self.conn()) for _ in range(conns)]

    async def connect(self):
        try:
            return await asyncio.wait_for(asyncio.open_connection("127.0.0.1", self.port, limit=1 << 20),
                                          self.timeout)
        except asyncio.TimeoutError:
            raise Failed("connect timeout")
        except ConnectionRefusedError:
            raise Failed("connect refused")
        except OSError as e:
            raise Failed(f"connect error ({err_name(e)})")

    async def exchange(self, writer, reader):
        try:
            writer.write(REQUEST)
            await writer.drain()
        except (ConnectionResetError, BrokenPipeError) as e:
            raise Failed("send failed") from e
        try:
            return await asyncio.wait_for(read_response(reader), self.timeout)
        except asyncio.TimeoutError:
            raise Failed("timeout")

    async def conn(self):
        while True:
            await self.running.wait()
            t0 = time.monotonic()
            try:
                reader, writer = await self.connect()
            except Failed as f:
                self.phases[-1].record(f.cause, (time.monotonic() - t0) * 1000)
                await asyncio.sleep(0.05)
                continue
            self.open += 1
            try:
                n = 0
                while self.running.is_set() and (self.per_conn == 0 or n < self.per_conn):
                    n += 1
                    t0 = time.monotonic()
                    try:
                        status, keep = await self.exchange(writer, reader)
                    except Failed as f:
                        self.phases[-1].record(f.cause, (time.monotonic() - t0) * 1000)
                        break
                    ms = (time.monotonic() - t0) * 1000
                    self.phases[-1].record(None if 200 <= status < 300 else f"status {status}", ms)
                    if not keep:
                        break
            finally:
                writer.transport.abort()
                self.open -= 1
                if self.open == 0:
                    self.idle.set()

    async def pause(self):
        self.running.clear()
        self.idle.clear()
        if self.open:
            await self.idle.wait()

    def new_phase(self, name):
        self.phases[-1].end = time.monotonic()
        self.phases.append(Phase(name))


async def main():
    port, conns = int(sys.argv[1]), int(sys.argv[2])
    per_conn = int(sys.argv[3]) if len(sys.argv) > 3 else 100
    timeout = float(sys.argv[4]) if len(sys.argv) > 4 else 10.0
    loop = asyncio.get_running_loop()
    stdin = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(stdin), sys.stdin)
    load = Load(port, conns, per_conn, timeout)
    while True:
        line = (await stdin.readline()).decode().strip()
        cmd, _, arg = line.partition(" ")
        if cmd == "phase":
            load.new_phase(arg)
        elif cmd == "pause":
            await load.pause()
            print("paused", flush=True)
        elif cmd == "resume":
            load.running.set()
            print("resumed", flush=True)
        elif cmd in ("stop", ""):  # "" = EOF: the orchestrator went away
            load.phases[-1].end = time.monotonic()
            if cmd == "stop":
                print("result " + json.dumps([p.as_dict() for p in load.phases]), flush=True)
            # Not by cancelling the connections' tasks: Python 3.11's
            # wait_for can swallow a cancellation that meets a refused
            # connect, and that task would then run for ever.
            os._exit(0)


if __name__ == "__main__":
    asyncio.run(main())
