"""The app of the native-filter tests (filters_test.cc), served two ways:

  filters_peer.py app PORT        the bare app under wsgiref (pasture's upstream)
  filters_peer.py paste INI PORT  the INI's main app loaded by paste.deploy
                                  (Paste's own gzip/prefix/translogger) under wsgiref

Prints "ready" once listening.
"""
import sys
import time
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

TEXT = b"".join(b"line %d of a compressible text body\n" % i for i in range(3000))


def app(environ, start_response):
    path = environ["PATH_INFO"]
    if path.endswith("/text"):
        start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(TEXT))),
                                  ("ETag", '"v1"')])
        return [TEXT]
    if path.endswith("/html"):
        start_response("200 OK", [("Content-Type", "text/html; charset=utf-8")])
        return [TEXT[:5000], TEXT[5000:]]
    if path.endswith("/json404"):
        body = b'{"error": "' + b"x" * 200 + b'"}'
        start_response("404 Not Found", [("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
        return [body]
    if path.endswith("/png"):
        start_response("200 OK", [("Content-Type", "image/png"), ("Content-Length", "3000")])
        return [b"\x89PNG" + b"\x00" * 2996]
    if path.endswith("/zip"):
        start_response("200 OK", [("Content-Type", "application/zip"), ("Content-Length", "3000")])
        return [b"PK" + b"\x00" * 2998]
    if path.endswith("/encoded"):
        start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Encoding", "identity-ish"),
                                  ("Content-Length", "3000")])
        return [b"e" * 3000]
    if path.endswith("/slow"):
        start_response("200 OK", [("Content-Type", "text/plain")])
        def gen():
            yield b"first chunk of a slow answer\n"
            time.sleep(2)
            yield b"second chunk\n"
        return gen()
    # Anything else: the environ keys PrefixMiddleware changes.
    if True:
        keys = ["SCRIPT_NAME", "PATH_INFO", "HTTP_HOST", "SERVER_NAME", "SERVER_PORT", "REMOTE_ADDR",
                "wsgi.url_scheme", "HTTP_X_FORWARDED_SERVER", "HTTP_X_FORWARDED_HOST", "HTTP_X_FORWARDED_FOR",
                "HTTP_X_FORWARDED_SCHEME", "HTTP_X_FORWARDED_PROTO", "QUERY_STRING"]
        body = "".join("%s=%s\n" % (k, environ.get(k, "<none>")) for k in keys).encode("latin-1")
        start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
        return [body]


def make_app(global_conf, **local):
    return app


class Quiet(WSGIRequestHandler):
    def log_message(self, *args):
        pass


def main():
    if sys.argv[1] == "app":
        served, port = app, int(sys.argv[2])
    else:
        from paste.deploy import loadapp
        served, port = loadapp("config:" + sys.argv[2]), int(sys.argv[3])
    srv = make_server("127.0.0.1", port, served, WSGIServer, Quiet)
    print("ready", flush=True)
    srv.serve_forever()


if __name__ == "__main__":
    main()
