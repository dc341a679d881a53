"""An HTTPS upstream for tests/integration/upstream_tls_test.cc (Python's ssl).

  tls_upstream.py CERT KEY [CLIENT_CA]

Serves HTTP/1.1 over TLS (keep-alive) on a free 127.0.0.1 port and prints
"port N", then for each TLS connection, once its handshake is done:

  conn N sni=NAME resumed=0|1 alpn=PROTO client=SUBJECT_CN

(NAME "-" when the client sent no SNI; CLIENT_CA given: client certificates
are required and must chain to it). A failed handshake prints
"handshake failed: REASON". Answers:

  /close        "closing", with Connection: close (the server closes after it)
  /health       "ok"
  POST /echo    the request body, back (Content-Length or chunked in)
  POST /sink    reads nothing for 3 s, then the body; answers its length
  /truncate     20000 bytes of a body framed by the connection's end, then
                a TCP FIN without close_notify (a cut the client must see)
  /closenotify  the same body, ended properly with close_notify
  /twice        "ok" (Content-Length), and right behind it, in its own TLS
                record of the same TCP segment, an answer nobody asked for
                ("injected"); /twicebig the same behind a 60,000-byte answer
  anything else "tls upstream METHOD PATH host=HOST conn=N"
"""
import http.server
import socket
import ssl
import sys
import threading
import time

lock = threading.Lock()
conns = 0
sni = {}


def say(*a):
    with lock:
        print(*a, flush=True)


def on_sni(sock, name, ctx):
    sni[id(sock)] = name


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *a):
        pass

    def answer(self, body, close=False):
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        if close:
            self.send_header("Connection", "close")
            self.close_connection = True
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        if self.path in ("/truncate", "/closenotify"):
            self.wfile.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nConnection: close\r\n\r\n")
            self.wfile.write(b"t" * 20000)
            self.wfile.flush()
            self.close_connection = True
            if self.path == "/truncate":
                self.connection.shutdown(socket.SHUT_WR)  # SSLSocket.shutdown: no close_notify
            else:
                self.connection.unwrap()  # close_notify
            return
        if self.path in ("/twice", "/twicebig"):  # records of one TCP segment (corked)
            body = b"ok" if self.path == "/twice" else b"b" * 60000  # big: past 48 KiB of plaintext
            self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_CORK, 1)
            self.wfile.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % len(body) + body)
            self.wfile.write(b"HTTP/1.1 200 OK\r\nX-Injected: 1\r\nContent-Length: 8\r\n\r\ninjected")
            self.wfile.flush()
            self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_CORK, 0)
            return
        if self.path == "/close":
            return self.answer(b"closing", close=True)
        if self.path == "/health":
            return self.answer(b"ok")
        text = "tls upstream %s %s host=%s conn=%d" % (self.command, self.path, self.headers.get("Host"),
                                                       self.server_conn)
        self.answer(text.encode())

    def do_POST(self):
        if self.path.startswith("/sink"):  # reads nothing for 3 s, then counts the body
            time.sleep(3)
            left = int(self.headers.get("Content-Length", "0"))
            while left > 0:
                got = len(self.rfile.read(min(left, 1 << 16)))
                if got == 0:
                    break
                left -= got
            return self.answer(str(int(self.headers.get("Content-Length", "0")) - left).encode())
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            body = b""
            while True:
                size = int(self.rfile.readline().split(b";")[0], 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    break
                body += self.rfile.read(size)
                self.rfile.readline()
        else:
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        self.answer(body)


class Server(http.server.ThreadingHTTPServer):
    daemon_threads = True

    def finish_request(self, request, client_address):
        global conns
        try:
            request.do_handshake()
        except (ssl.SSLError, OSError) as e:
            say("handshake failed: %s" % e)
            return
        with lock:
            conns += 1
            n = conns
        peer = request.getpeercert() or {}
        cn = "-"
        for rdn in peer.get("subject", ()):
            for k, v in rdn:
                if k == "commonName":
                    cn = v
        say("conn %d sni=%s resumed=%d alpn=%s client=%s" %
            (n, sni.pop(id(request), None) or "-", int(request.session_reused),
             request.selected_alpn_protocol() or "-", cn))
        try:
            type("ConnHandler", (Handler,), {"server_conn": n})(request, client_address, self)
        except (ssl.SSLError, OSError):
            pass


def main():
    cert, key = sys.argv[1], sys.argv[2]
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(cert, key)
    ctx.set_alpn_protocols(["http/1.1"])
    ctx.sni_callback = on_sni
    if len(sys.argv) > 3:
        ctx.load_verify_locations(sys.argv[3])
        ctx.verify_mode = ssl.CERT_REQUIRED
    srv = Server(("127.0.0.1", 0), Handler)
    srv.socket = ctx.wrap_socket(srv.socket, server_side=True, do_handshake_on_connect=False)
    say("port %d" % srv.socket.getsockname()[1])
    srv.serve_forever()


if __name__ == "__main__":
    main()
