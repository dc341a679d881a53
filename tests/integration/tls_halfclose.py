"""A TLS client for tests/integration/tls_serve_test.cc: sends a request and
its close_notify in one TCP write, then prints the status line it gets
("none" if nothing came before the server's close).

  tls_halfclose.py PORT PATH
"""
import socket
import ssl
import sys

port, path = int(sys.argv[1]), sys.argv[2]
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
ctx.check_hostname = False
ctx.verify_mode = ssl.CERT_NONE
ctx.set_alpn_protocols(["http/1.1"])
inc, out = ssl.MemoryBIO(), ssl.MemoryBIO()
o = ctx.wrap_bio(inc, out, server_hostname="localhost")
s = socket.create_connection(("127.0.0.1", port), timeout=5)
while True:
    try:
        o.do_handshake()
        break
    except ssl.SSLWantReadError:
        d = out.read()
        if d:
            s.sendall(d)
        inc.write(s.recv(65536))
s.sendall(out.read())
o.write(("GET %s HTTP/1.1\r\nHost: localhost\r\n\r\n" % path).encode())
try:
    o.unwrap()  # close_notify, queued behind the request
except ssl.SSLWantReadError:
    pass
s.sendall(out.read())  # both in one write
got = b""
try:
    while True:
        d = s.recv(65536)
        if not d:
            break
        inc.write(d)
        while True:
            try:
                x = o.read(65536)
            except (ssl.SSLWantReadError, ssl.SSLZeroReturnError):
                break
            if not x:
                break
            got += x
except (socket.timeout, ConnectionResetError, ssl.SSLError):
    pass
print(got.split(b"\r\n")[0].decode() if got else "none")
