"""HTTP/2 clients for pasture's tests (python3-h2, python3-hpack).

  h2client.py get PORT PATH N                 N concurrent GETs on one connection
  h2client.py rapid PORT N                    HEADERS then RST_STREAM, N times (CVE-2023-44487)
  h2client.py continuation PORT N             one HEADERS without END_HEADERS, then N CONTINUATIONs
  h2client.py bomb PORT N                     one 4000-byte table entry referenced N times
  h2client.py streams PORT N                  N streams at once, past SETTINGS_MAX_CONCURRENT_STREAMS
  h2client.py uppercase PORT                  a field name in upper case (raw HPACK)
  h2client.py stallbody PORT                  a POST whose body stops after 3 of 10 bytes; then a GET
  h2client.py wsconnect PORT PATH            WebSocket over HTTP/2 (RFC 8441): extended CONNECT, a text
                                              message echoed, a close handshake, END_STREAM both ways
  h2client.py eofhold PORT N                  N POST streams without their bodies, then a FIN (shutdown)
  h2client.py openblock PORT                  a HEADERS frame without END_HEADERS, then silence
  h2client.py hints PORT SECONDS             stream 1 GET /big (not read for SECONDS), stream 3 GET /hints:
                                              the 103's fields as they arrive
  h2client.py zerowin PORT N SECONDS [PATH]  N GETs of PATH (/bigI) with a stream window of 0, never opened;
                                              the streams reset within SECONDS
  h2client.py zerowinfin PORT N [PATH]       as zerowin, then a FIN after 1 s: how long until the streams
                                              are reset and the connection ends
  h2client.py emptyzero PORT PATH...         with a window of 0, a GET of each PATH (answers without a
                                              body): how many streams ended (END_STREAM) or were reset
  h2client.py tunnelstall PORT PATH          an extended CONNECT with a window of 0, never opened: the
                                              tunnel's status, and how long until the server resets it
  h2client.py post PORT PATH SIZE             a POST of SIZE bytes without content-length; its status
  h2client.py idle PORT N PATH MASTERPID     N connections, each GET PATH read whole, then held idle:
                                              the workers' RSS growth per connection (KiB)
  h2client.py madereset PORT N                N streams the server must reset (DATA past content-length)
  h2client.py hostmismatch PORT HOST         :authority "good" with a host field HOST; the status
  h2client.py load PORT SECONDS STREAMS       requests in flight all the time; GOAWAY: retry what
                                              the server did not take, on a new connection

Each prints one result line (key=value ...) the C++ test parses.
"""
import socket
import struct
import sys
import time

import h2.config
import h2.connection
import h2.events
import hpack

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"


def frame(ftype, flags, stream, payload):
    return struct.pack(">I", len(payload))[1:] + bytes([ftype, flags]) + struct.pack(">I", stream) + payload


SETTINGS, HEADERS, RST, GOAWAY, CONT, DATA = 4, 1, 3, 7, 9, 0
END_STREAM, END_HEADERS = 1, 4


def connect(port):
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return s


def read_frames(s, until, timeout=5.0):
    """Frames (type, flags, stream, payload) until until(frames) or EOF/timeout; (frames, eof)."""
    buf, frames, end = b"", [], time.time() + timeout
    s.settimeout(0.2)
    while time.time() < end:
        try:
            d = s.recv(65536)
        except socket.timeout:
            continue
        except ConnectionResetError:
            return frames, True
        if not d:
            return frames, True
        buf += d
        while len(buf) >= 9:
            n = int.from_bytes(buf[:3], "big")
            if len(buf) < 9 + n:
                break
            frames.append((buf[3], buf[4], int.from_bytes(buf[5:9], "big") & 0x7FFFFFFF, buf[9:9 + n]))
            buf = buf[9 + n:]
        if until(frames):
            return frames, False
    return frames, False


PING = 6
PING_FRAME = frame(PING, 0, 0, b"pasture!")


def ping_acked(frames):
    """The server answered a PING sent after everything else: it read all before it."""
    return any(t == PING and fl & 1 for t, fl, _, _ in frames)


def goaway_code(frames):
    for t, _, _, p in frames:
        if t == GOAWAY:
            return int.from_bytes(p[4:8], "big")
    return -1


def request_block(enc, path="/", extra=()):
    return enc.encode([(":method", "GET"), (":scheme", "http"), (":authority", "localhost"), (":path", path)] +
                      list(extra))


def raw_start(port):
    s = connect(port)
    s.sendall(PREFACE + frame(SETTINGS, 0, 0, b""))
    return s


def cmd_get(port, path, n):
    c = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
    s = connect(port)
    c.initiate_connection()
    s.sendall(c.data_to_send())
    ids = []
    for _ in range(n):
        i = c.get_next_available_stream_id()
        c.send_headers(i, [(":method", "GET"), (":scheme", "http"), (":authority", "localhost"), (":path", path)],
                       end_stream=True)
        ids.append(i)
    s.sendall(c.data_to_send())
    status, done, body = {}, set(), {}
    s.settimeout(10)
    while len(done) < n:
        d = s.recv(65536)
        if not d:
            break
        for e in c.receive_data(d):
            if isinstance(e, h2.events.ResponseReceived):
                status[e.stream_id] = dict(e.headers)[b":status"].decode()
            elif isinstance(e, h2.events.DataReceived):
                body[e.stream_id] = body.get(e.stream_id, b"") + e.data
                c.acknowledge_received_data(e.flow_controlled_length, e.stream_id)
            elif isinstance(e, h2.events.StreamEnded):
                done.add(e.stream_id)
            elif isinstance(e, h2.events.StreamReset):
                done.add(e.stream_id)
        s.sendall(c.data_to_send())
    ok = sum(1 for i in ids if status.get(i) == "200" and i in done)
    first = body.get(ids[0], b"").decode(errors="replace").strip()
    print(f"ok={ok} total={n} body={first!r}")


def cmd_rapid(port, n):
    s = raw_start(port)
    enc = hpack.Encoder()
    out = b""
    for k in range(n):
        sid = 2 * k + 1
        out += frame(HEADERS, END_HEADERS | END_STREAM, sid, request_block(enc))
        out += frame(RST, 0, sid, struct.pack(">I", 8))  # CANCEL
    try:
        s.sendall(out + PING_FRAME)
    except (BrokenPipeError, ConnectionResetError):
        pass
    frames, eof = read_frames(s, lambda f: goaway_code(f) >= 0 or ping_acked(f))
    print(f"goaway={goaway_code(frames)} eof={int(eof)}")


def cmd_continuation(port, n):
    s = raw_start(port)
    enc = hpack.Encoder()
    s.sendall(frame(HEADERS, 0, 1, request_block(enc)))  # no END_HEADERS: CONTINUATION follows
    sent = 0
    try:
        for _ in range(n):
            s.sendall(frame(CONT, 0, 1, enc.encode([("x-pad", "a" * 16)])))
            sent += 1
    except (BrokenPipeError, ConnectionResetError):
        pass
    frames, eof = read_frames(s, lambda f: goaway_code(f) >= 0, timeout=3)
    print(f"goaway={goaway_code(frames)} eof={int(eof)} sent={sent}")


def cmd_bomb(port, n):
    s = raw_start(port)
    enc = hpack.Encoder()
    big = ("x-big", "b" * 4000)
    block = request_block(enc, extra=[big])  # literal with indexing: now entry 62
    # Indexed header field 62: 0xBE (1 byte: 0x80 | 62).
    block += bytes([0x80 | 62]) * n
    payload = frame(HEADERS, END_HEADERS | END_STREAM, 1, block)
    try:
        s.sendall(payload + PING_FRAME)
    except (BrokenPipeError, ConnectionResetError):
        pass
    frames, eof = read_frames(s, lambda f: goaway_code(f) >= 0 or ping_acked(f))
    status = [t for t, _, st, _ in frames if t == HEADERS and st == 1]
    rst = [int.from_bytes(p[:4], "big") for t, _, _, p in frames if t == RST]
    print(f"goaway={goaway_code(frames)} eof={int(eof)} rst={rst[0] if rst else -1} answered={len(status)} "
          f"block={len(block)}")


def cmd_streams(port, n):
    s = raw_start(port)
    enc = hpack.Encoder()
    out = b""
    for k in range(n):
        out += frame(HEADERS, END_HEADERS | END_STREAM, 2 * k + 1, request_block(enc, "/slow"))
    s.sendall(out)

    def enough(fs):
        answered = {st for t, fl, st, _ in fs if (t == HEADERS or t == 0) and fl & END_STREAM}
        refused = {st for t, _, st, _ in fs if t == RST}
        return len(answered) + len(refused) >= n or goaway_code(fs) >= 0

    frames, eof = read_frames(s, enough, timeout=10)
    answered = {st for t, fl, st, _ in frames if (t == HEADERS or t == 0) and fl & END_STREAM}
    refused = [int.from_bytes(p[:4], "big") for t, _, _, p in frames if t == RST]
    print(f"answered={len(answered)} refused={len(refused)} refused_code={refused[0] if refused else -1} "
          f"goaway={goaway_code(frames)}")


def cmd_uppercase(port):
    s = raw_start(port)
    enc = hpack.Encoder()
    block = request_block(enc)
    # Literal without indexing, new name "X-Upper": 0x00, len, name, len, value.
    block += b"\x00" + bytes([7]) + b"X-Upper" + bytes([1]) + b"v"
    s.sendall(frame(HEADERS, END_HEADERS | END_STREAM, 1, block) +
              frame(HEADERS, END_HEADERS | END_STREAM, 3, request_block(enc, "/fine")))
    frames, eof = read_frames(s, lambda f: any(t == HEADERS and st == 3 for t, _, st, _ in f) and
                              any(t == RST and st == 1 for t, _, st, _ in f), timeout=5)
    rst1 = [int.from_bytes(p[:4], "big") for t, _, st, p in frames if t == RST and st == 1]
    ok3 = any(t == HEADERS and st == 3 for t, _, st, _ in frames)
    print(f"rst1={rst1[0] if rst1 else -1} ok3={int(ok3)}")


def cmd_abspath(port):
    """Stream 1: :scheme foo and an absolute-form :path naming another host;
    stream 3: an ordinary request. Prints stream 1's status (or its
    RST_STREAM code) and whether stream 3 was answered."""
    s = raw_start(port)
    enc = hpack.Encoder()
    block = enc.encode([(":method", "GET"), (":scheme", "foo"), (":authority", "good"),
                        (":path", "http://evil.example/admin")])
    s.sendall(frame(HEADERS, END_HEADERS | END_STREAM, 1, block) +
              frame(HEADERS, END_HEADERS | END_STREAM, 3, request_block(enc, "/fine")))
    frames, eof = read_frames(s, lambda f: any(t == HEADERS and st == 3 for t, _, st, _ in f) and
                              any(t in (HEADERS, RST) and st == 1 for t, _, st, _ in f), timeout=5)
    dec = hpack.Decoder()
    status1 = "-1"
    for t, _, st, p in frames:
        if t == HEADERS:
            h = dict(dec.decode(p))
            if st == 1:
                status1 = str(h.get(":status", "?"))
        elif t == RST and st == 1:
            status1 = "rst" + str(int.from_bytes(p[:4], "big"))
    ok3 = any(t == HEADERS and st == 3 for t, _, st, _ in frames)
    print(f"status1={status1} ok3={int(ok3)}")


def cmd_stallbody(port):
    """Stream 1: POST, content-length 10, 3 bytes of DATA, then nothing.
    Prints stream 1's status (or RST code), the seconds it took, and whether
    a GET on stream 3 of the same connection is answered afterwards."""
    s = raw_start(port)
    enc = hpack.Encoder()
    block = enc.encode([(":method", "POST"), (":scheme", "http"), (":authority", "localhost"),
                        (":path", "/stall"), ("content-length", "10")])
    t0 = time.time()
    s.sendall(frame(HEADERS, END_HEADERS, 1, block) + frame(0, 0, 1, b"abc"))
    frames, eof = read_frames(s, lambda f: any((t == HEADERS or t == RST) and st == 1 for t, _, st, _ in f),
                              timeout=15)
    took = time.time() - t0
    dec = hpack.Decoder()
    status1 = "-1"
    for t, _, st, p in frames:
        if t == HEADERS and st == 1:
            status1 = str(dict(dec.decode(p)).get(":status", "?"))
        elif t == RST and st == 1 and status1 == "-1":  # a RST after the answer ends the unread body
            status1 = "rst" + str(int.from_bytes(p[:4], "big"))
    s.sendall(frame(HEADERS, END_HEADERS | END_STREAM, 3, request_block(enc, "/after")))
    frames, eof = read_frames(s, lambda f: any(t == HEADERS and st == 3 for t, _, st, _ in f), timeout=5)
    ok3 = any(t == HEADERS and st == 3 for t, _, st, _ in frames)
    print(f"status1={status1} took={took:.1f} ok3={int(ok3)}")


def ws_frame(opcode, payload):
    """A masked client frame (RFC 6455 5.2), payload < 126 bytes."""
    mask = b"\x01\x02\x03\x04"
    return bytes([0x80 | opcode, 0x80 | len(payload)]) + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload))


def ws_messages(data):
    """(opcode, payload) of the unmasked server frames in data (short frames)."""
    out = []
    while len(data) >= 2:
        n = data[1] & 0x7F
        if len(data) < 2 + n:
            break
        out.append((data[0] & 0x0F, data[2:2 + n]))
        data = data[2 + n:]
    return out


def cmd_wsconnect(port, path):
    s = raw_start(port)
    frames, _ = read_frames(s, lambda f: any(t == SETTINGS and not fl & 1 for t, fl, _, _ in f), timeout=5)
    enabled = 0
    for t, fl, _, p in frames:
        if t == SETTINGS and not fl & 1:
            for i in range(0, len(p) - 5, 6):
                if int.from_bytes(p[i:i + 2], "big") == 8:
                    enabled = int.from_bytes(p[i + 2:i + 6], "big")
    s.sendall(frame(SETTINGS, 1, 0, b""))  # ACK: the server's SETTINGS take effect
    enc, dec = hpack.Encoder(), hpack.Decoder()
    block = enc.encode([(":method", "CONNECT"), (":protocol", "websocket"), (":scheme", "http"),
                        (":path", path), (":authority", "localhost"), ("sec-websocket-version", "13")])
    s.sendall(frame(HEADERS, END_HEADERS, 1, block))
    frames, eof = read_frames(s, lambda f: any(t in (HEADERS, RST) and st == 1 for t, _, st, _ in f), timeout=10)
    status, accept = "-1", "-"
    for t, _, st, p in frames:
        if t == HEADERS and st == 1:
            h = dict(dec.decode(p))
            status = str(h.get(":status", "?"))
            accept = "yes" if "sec-websocket-accept" in h else "no"
        elif t == RST and st == 1 and status == "-1":
            status = "rst" + str(int.from_bytes(p[:4], "big"))
    if status != "200":
        print(f"settings={enabled} status={status}")
        return
    s.sendall(frame(0, 0, 1, ws_frame(1, b"hello over h2")))
    got, ended = b"", False

    def until_echo(f):
        data = b"".join(p for t, _, st, p in f if t == 0 and st == 1)
        return any(op == 1 for op, _ in ws_messages(data))
    frames, _ = read_frames(s, until_echo, timeout=10)
    got = b"".join(p for t, _, st, p in frames if t == 0 and st == 1)
    echo = "".join(m.decode() for op, m in ws_messages(got) if op == 1)
    # Close handshake: our close frame and END_STREAM; the server's close
    # frame and END_STREAM come back, then the stream is closed.
    s.sendall(frame(0, END_STREAM, 1, ws_frame(8, (1000).to_bytes(2, "big"))))
    frames, eof = read_frames(s, lambda f: any(t == 0 and st == 1 and fl & END_STREAM for t, fl, st, _ in f),
                              timeout=10)
    data = b"".join(p for t, _, st, p in frames if t == 0 and st == 1)
    closed = any(op == 8 for op, _ in ws_messages(data))
    ended = any(t == 0 and st == 1 and fl & END_STREAM for t, fl, st, _ in frames)
    print(f"settings={enabled} status={status} accept={accept} echo={echo.replace(' ', '_')} "
          f"close_frame={int(closed)} end_stream={int(ended)}")


def cmd_eofhold(port, n):
    """N POST streams (content-length 10, no DATA), a second to reach the
    upstream, then shutdown(SHUT_WR). Prints how many were reset and whether
    the server closed within 5 s."""
    s = raw_start(port)
    enc = hpack.Encoder()
    for i in range(n):
        block = enc.encode([(":method", "POST"), (":scheme", "http"), (":authority", "localhost"),
                            (":path", "/hold%d" % i), ("content-length", "10")])
        s.sendall(frame(HEADERS, END_HEADERS, 1 + 2 * i, block))
    time.sleep(1)
    s.shutdown(socket.SHUT_WR)
    frames, eof = read_frames(s, lambda f: False, timeout=5)
    resets = sum(1 for t, _, _, _ in frames if t == RST)
    print(f"resets={resets} eof={int(eof)}")


def cmd_openblock(port):
    """A request's HEADERS without END_HEADERS and no CONTINUATION: prints
    whether (and after how long) the server closed the connection."""
    s = raw_start(port)
    enc = hpack.Encoder()
    t0 = time.time()
    s.sendall(frame(HEADERS, 0, 1, request_block(enc, "/")))
    frames, eof = read_frames(s, lambda f: False, timeout=10)
    print(f"eof={int(eof)} took={time.time() - t0:.1f}")


def cmd_hints(port, seconds):
    """Stream 1: GET /big with wide windows, stream 3: GET /hints; nothing is
    read for `seconds` (the server's output backs up meanwhile), then all is
    read. Prints the 103's x-hint-a/x-hint-b as seen (intact or not) and the
    final statuses."""
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 32768)
    s.connect(("127.0.0.1", port))
    c = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True, header_encoding=None))
    c.initiate_connection()
    c.increment_flow_control_window(2 ** 30)
    c.send_headers(1, [(":method", "GET"), (":scheme", "http"), (":path", "/big"), (":authority", "a")],
                   end_stream=True)
    c.increment_flow_control_window(2 ** 30, stream_id=1)
    c.send_headers(3, [(":method", "GET"), (":scheme", "http"), (":path", "/hints"), (":authority", "a")],
                   end_stream=True)
    s.sendall(c.data_to_send())
    time.sleep(seconds)
    s.settimeout(10)
    hints, final, ended = {}, {}, set()
    while ended != {1, 3}:
        try:
            d = s.recv(1 << 20)
        except socket.timeout:
            break
        if not d:
            break
        for e in c.receive_data(d):
            if isinstance(e, h2.events.InformationalResponseReceived) and e.stream_id == 3:
                hints = {bytes(k): bytes(v) for k, v in e.headers}
            elif isinstance(e, h2.events.ResponseReceived):
                final[e.stream_id] = dict(e.headers)[b":status"].decode()
            elif isinstance(e, h2.events.DataReceived):
                c.acknowledge_received_data(e.flow_controlled_length, e.stream_id)
            elif isinstance(e, (h2.events.StreamEnded, h2.events.StreamReset)):
                ended.add(e.stream_id)
        s.sendall(c.data_to_send())
    a = hints.get(b"x-hint-a", b"")
    b = hints.get(b"x-hint-b", b"")
    ok_a = int(a == b"A" * 3000)
    ok_b = int(b == b"B" * 3000)
    print(f"status103={hints.get(b':status', b'-').decode(errors='replace')} hint_a={ok_a} hint_b={ok_b} "
          f"fields={len(hints)} big={final.get(1, '-')} hints={final.get(3, '-')}")


def cmd_zerowin(port, n, seconds, path=None):
    s = connect(port)
    # SETTINGS_INITIAL_WINDOW_SIZE = 0: no DATA until a WINDOW_UPDATE, never sent.
    s.sendall(PREFACE + frame(SETTINGS, 0, 0, struct.pack(">HI", 4, 0)))
    enc = hpack.Encoder()
    for i in range(n):
        s.sendall(frame(HEADERS, END_HEADERS | END_STREAM, 1 + 2 * i, request_block(enc, path or "/big%d" % i)))
    t0 = time.time()
    frames, eof = read_frames(s, lambda f: sum(1 for t, _, _, _ in f if t == RST) >= n, timeout=seconds)
    resets = sum(1 for t, _, _, _ in frames if t == RST)
    heads = sum(1 for t, _, st, _ in frames if t == HEADERS)
    print(f"heads={heads} resets={resets} took={time.time() - t0:.1f}")


def cmd_zerowinfin(port, n, path=None):
    """N GETs with a window of 0 (never opened), their heads read, then
    shutdown(SHUT_WR): no WINDOW_UPDATE can come any more. Prints the resets,
    whether the server closed, and how long after the FIN."""
    s = connect(port)
    s.sendall(PREFACE + frame(SETTINGS, 0, 0, struct.pack(">HI", 4, 0)))
    enc = hpack.Encoder()
    for i in range(n):
        s.sendall(frame(HEADERS, END_HEADERS | END_STREAM, 1 + 2 * i, request_block(enc, path or "/big%d" % i)))
    early, _ = read_frames(s, lambda f: sum(1 for t, _, _, _ in f if t == HEADERS) >= n, timeout=5)
    s.shutdown(socket.SHUT_WR)
    t0 = time.time()
    frames, eof = read_frames(s, lambda f: False, timeout=20)
    resets = sum(1 for t, _, _, _ in early + frames if t == RST)
    heads = sum(1 for t, _, _, _ in early + frames if t == HEADERS)
    print(f"heads={heads} resets={resets} eof={int(eof)} took={time.time() - t0:.1f}")


def cmd_emptyzero(port, paths):
    """SETTINGS_INITIAL_WINDOW_SIZE = 0, then a GET of each path: answers
    without a body must end all the same (no DATA needs a window)."""
    s = connect(port)
    s.sendall(PREFACE + frame(SETTINGS, 0, 0, struct.pack(">HI", 4, 0)))
    enc = hpack.Encoder()
    for i, p in enumerate(paths):
        s.sendall(frame(HEADERS, END_HEADERS | END_STREAM, 1 + 2 * i, request_block(enc, p)))
    ended_of = lambda f: {st for t, fl, st, _ in f if t in (HEADERS, DATA) and fl & END_STREAM}
    frames, eof = read_frames(s, lambda f: len(ended_of(f)) >= len(paths), timeout=5)
    resets = sum(1 for t, _, _, _ in frames if t == RST)
    print(f"ended={len(ended_of(frames))} resets={resets}")


def cmd_tunnelstall(port, path):
    """A WebSocket tunnel over HTTP/2 whose stream window is 0 for good: the
    upstream's bytes cannot come; once it has gone, the server must end the
    stream (send_timeout), not hold it."""
    s = connect(port)
    s.sendall(PREFACE + frame(SETTINGS, 0, 0, struct.pack(">HI", 4, 0)))
    read_frames(s, lambda f: any(t == SETTINGS and not fl & 1 for t, fl, _, _ in f), timeout=5)
    s.sendall(frame(SETTINGS, 1, 0, b""))
    enc, dec = hpack.Encoder(), hpack.Decoder()
    block = enc.encode([(":method", "CONNECT"), (":protocol", "websocket"), (":scheme", "http"),
                        (":path", path), (":authority", "localhost"), ("sec-websocket-version", "13")])
    s.sendall(frame(HEADERS, END_HEADERS, 1, block))
    t0 = time.time()
    frames, eof = read_frames(s, lambda f: any(t == RST and st == 1 for t, _, st, _ in f), timeout=20)
    status = "-1"
    for t, _, st, p in frames:
        if t == HEADERS and st == 1 and status == "-1":
            status = str(dict(dec.decode(p)).get(":status", "?"))
    rst = any(t == RST and st == 1 for t, _, st, _ in frames)
    print(f"status={status} rst={int(rst)} took={time.time() - t0:.1f}")


def cmd_post(port, path, size):
    c = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
    s = connect(port)
    c.initiate_connection()
    c.send_headers(1, [(":method", "POST"), (":scheme", "http"), (":authority", "localhost"), (":path", path)])
    s.sendall(c.data_to_send())
    left, status, done = size, "-1", False
    s.settimeout(0.2)
    end = time.time() + 10
    while not done and time.time() < end:
        while left and c.local_flow_control_window(1) > 0:
            n = min(left, 16384, c.local_flow_control_window(1))
            c.send_data(1, b"x" * n, end_stream=(n == left))
            left -= n
        s.sendall(c.data_to_send())
        try:
            d = s.recv(65536)
        except socket.timeout:
            continue
        if not d:
            break
        for e in c.receive_data(d):
            if isinstance(e, h2.events.ResponseReceived):
                status = dict(e.headers)[b":status"].decode()
            elif isinstance(e, h2.events.DataReceived):
                c.acknowledge_received_data(e.flow_controlled_length, e.stream_id)
            elif isinstance(e, (h2.events.StreamEnded, h2.events.StreamReset)):
                done = True
        s.sendall(c.data_to_send())
    print(f"status={status} unsent={left}")


def workers_rss_kib(master):
    with open("/proc/%d/task/%d/children" % (master, master)) as f:
        pids = f.read().split()
    total = 0
    for p in pids:
        with open("/proc/%s/status" % p) as f:
            total += int(f.read().split("VmRSS:")[1].split()[0])
    return total


def cmd_idle(port, n, path, master):
    before = workers_rss_kib(master)
    conns = []
    for _ in range(n):
        s = connect(port)
        c = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
        c.initiate_connection()
        c.send_headers(1, [(":method", "GET"), (":scheme", "http"), (":path", path), (":authority", "a")],
                       end_stream=True)
        s.sendall(c.data_to_send())
        done = False
        while not done:
            d = s.recv(262144)
            if not d:
                break
            for e in c.receive_data(d):
                if isinstance(e, h2.events.DataReceived):
                    c.acknowledge_received_data(e.flow_controlled_length, e.stream_id)
                elif isinstance(e, h2.events.StreamEnded):
                    done = True
            s.sendall(c.data_to_send())
        conns.append(s)
    time.sleep(1)
    after = workers_rss_kib(master)
    print(f"held={len(conns)} per_conn_kib={(after - before) / n:.1f}")


def cmd_madereset(port, n):
    """Each stream: POST with content-length 1, then 2 bytes of DATA: nghttp2
    resets it (PROTOCOL_ERROR). Prints the GOAWAY code (-1: none)."""
    s = raw_start(port)
    enc = hpack.Encoder()
    out = b""
    for i in range(n):
        sid = 1 + 2 * i
        block = enc.encode([(":method", "POST"), (":scheme", "http"), (":authority", "localhost"),
                            (":path", "/mr%d" % i), ("content-length", "1")])
        out += frame(HEADERS, END_HEADERS, sid, block) + frame(0, END_STREAM, sid, b"xy")
    try:
        s.sendall(out)
    except OSError:
        pass
    frames, eof = read_frames(s, lambda f: goaway_code(f) != -1, timeout=5)
    resets = sum(1 for t, _, _, _ in frames if t == RST)
    print(f"goaway={goaway_code(frames)} resets={resets}")


def cmd_hostmismatch(port, host):
    s = raw_start(port)
    enc, dec = hpack.Encoder(), hpack.Decoder()
    block = enc.encode([(":method", "GET"), (":scheme", "http"), (":authority", "good"), (":path", "/h"),
                        ("host", host)])
    s.sendall(frame(HEADERS, END_HEADERS | END_STREAM, 1, block))
    frames, eof = read_frames(s, lambda f: any(t in (HEADERS, RST) and st == 1 for t, _, st, _ in f), timeout=5)
    status = "-1"
    for t, _, st, p in frames:
        if t == HEADERS and st == 1:
            status = str(dict(dec.decode(p)).get(":status", "?"))
        elif t == RST and st == 1 and status == "-1":
            status = "rst" + str(int.from_bytes(p[:4], "big"))
    print(f"status={status}")


def cmd_load(port, seconds, streams):
    """Keeps `streams` requests in flight for `seconds`, on raw frames (python
    h2 takes any GOAWAY for the connection's end, the shutdown notice too).
    After a GOAWAY no stream is opened there; its streams above last_stream_id
    were not taken (RFC 9113 6.8) and go again on a new connection. A stream
    the server took must complete with 200."""
    end = time.time() + seconds
    ok = failed = retried = conns = goaways = 0
    pending = 0  # requests to issue again
    while True:
        s = raw_start(port)
        s.settimeout(5)
        conns += 1
        enc, dec = hpack.Encoder(), hpack.Decoder()
        next_id, inflight, last, buf = 1, {}, None, b""

        def finish(sid):
            nonlocal ok, failed
            if sid in inflight:
                if inflight.pop(sid) == "200":
                    ok += 1
                else:
                    failed += 1

        while True:
            out = b""
            while last is None and len(inflight) < streams and (time.time() < end or pending > 0):
                out += frame(HEADERS, END_HEADERS | END_STREAM, next_id, request_block(enc, f"/load/{next_id}"))
                inflight[next_id] = None
                next_id += 2
                if pending > 0:
                    pending -= 1
            if out:
                s.sendall(out)
            if not inflight and (last is not None or (time.time() >= end and pending == 0)):
                break
            try:
                d = s.recv(65536)
            except (socket.timeout, OSError):
                d = b""
            if not d:  # the connection ended: what it took and did not answer failed
                failed += len(inflight)
                inflight.clear()
                break
            buf += d
            reply = b""
            while len(buf) >= 9:
                n = int.from_bytes(buf[:3], "big")
                if len(buf) < 9 + n:
                    break
                t, fl, sid, p = buf[3], buf[4], int.from_bytes(buf[5:9], "big") & 0x7FFFFFFF, buf[9:9 + n]
                buf = buf[9 + n:]
                if t == SETTINGS and not fl & 1:
                    reply += frame(SETTINGS, 1, 0, b"")
                elif t == 6 and not fl & 1:  # PING
                    reply += frame(6, 1, 0, p)
                elif t == HEADERS:
                    if fl & 0x8:
                        p = p[1:len(p) - p[0]]
                    if fl & 0x20:
                        p = p[5:]
                    hdrs = dict(dec.decode(p))
                    if sid in inflight and ":status" in hdrs and not hdrs[":status"].startswith("1"):
                        inflight[sid] = hdrs[":status"]
                    if fl & END_STREAM:
                        finish(sid)
                elif t == 0:  # DATA
                    if n:
                        reply += frame(8, 0, 0, struct.pack(">I", n))
                    if fl & END_STREAM:
                        finish(sid)
                elif t == RST:
                    if sid in inflight:
                        inflight.pop(sid)
                        failed += 1
                elif t == GOAWAY:
                    goaways += 1
                    last = int.from_bytes(p[:4], "big") & 0x7FFFFFFF
                    for i in [i for i in inflight if i > last]:
                        inflight.pop(i)
                        retried += 1
                        pending += 1
            if reply:
                try:
                    s.sendall(reply)
                except OSError:
                    pass
        s.close()
        if time.time() >= end and pending == 0:
            break
    print(f"ok={ok} failed={failed} retried={retried} connections={conns} goaways={goaways}")


def main():
    cmd, port = sys.argv[1], int(sys.argv[2])
    a = sys.argv[3:]
    if cmd == "get":
        cmd_get(port, a[0], int(a[1]))
    elif cmd == "rapid":
        cmd_rapid(port, int(a[0]))
    elif cmd == "continuation":
        cmd_continuation(port, int(a[0]))
    elif cmd == "bomb":
        cmd_bomb(port, int(a[0]))
    elif cmd == "streams":
        cmd_streams(port, int(a[0]))
    elif cmd == "uppercase":
        cmd_uppercase(port)
    elif cmd == "abspath":
        cmd_abspath(port)
    elif cmd == "stallbody":
        cmd_stallbody(port)
    elif cmd == "wsconnect":
        cmd_wsconnect(port, a[0])
    elif cmd == "eofhold":
        cmd_eofhold(port, int(a[0]))
    elif cmd == "openblock":
        cmd_openblock(port)
    elif cmd == "hints":
        cmd_hints(port, float(a[0]))
    elif cmd == "tunnelstall":
        cmd_tunnelstall(port, a[0])
    elif cmd == "emptyzero":
        cmd_emptyzero(port, a)
    elif cmd == "zerowinfin":
        cmd_zerowinfin(port, int(a[0]), a[1] if len(a) > 1 else None)
    elif cmd == "zerowin":
        cmd_zerowin(port, int(a[0]), float(a[1]), a[2] if len(a) > 2 else None)
    elif cmd == "post":
        cmd_post(port, a[0], int(a[1]))
    elif cmd == "idle":
        cmd_idle(port, int(a[0]), a[1], int(a[2]))
    elif cmd == "madereset":
        cmd_madereset(port, int(a[0]))
    elif cmd == "hostmismatch":
        cmd_hostmismatch(port, a[0])
    elif cmd == "load":
        cmd_load(port, float(a[0]), int(a[1]))


if __name__ == "__main__":
    main()
