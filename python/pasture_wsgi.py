"""pasture's app runner: hosts one paste.deploy WSGI app for the pasture master.

The master (master/apphost.cc) runs one of these per app process:

    python3 pasture_wsgi.py --uri config:/abs/site.ini --name main \
        --relative-to /abs --listen-fd 3 --ready-fd 4 [--skip-filters N] [--var k=v ...]

Contract with the master:
  * The app is loaded with paste.deploy itself (loadapp semantics, or
    loadcontext when --skip-filters drops leading pipeline filters that pasture
    runs natively, i.e. the balancer) BEFORE anything is served. A failure prints
    the Python traceback to stderr and exits with status 3.
  * Then it serves on the listening socket it inherited as --listen-fd (a
    unix socket in a private directory; the master binds it once per app slot and keeps it across respawns, so
    connections made while a process restarts wait in the backlog), or binds
    --unix PATH itself, and writes "ready <pid>\\n" to --ready-fd.
  * SIGTERM: stop accepting, finish the requests in flight (at most
    PASTURE_GRACEFUL_TIMEOUT seconds), exit 0. SIGINT: exit at once.
  * PASTURE_RELOAD=SECS: poll the files of the loaded modules every SECS and
    exit 0 (gracefully) when one changes; the master starts a new process.
  * PASTURE_NO_CORE_DUMPS=1: before loading the app (its config holds
    secrets), prctl(PR_SET_DUMPABLE, 0): no core file, no ptrace by its user.

Requests come from pasture's workers, which add X-Forwarded-For (the real
client is the last hop), X-Forwarded-Proto, X-Forwarded-Host and, behind a
urlmap prefix, X-Pasture-Script-Name. The environ is rebuilt from them so the
app sees what `paster serve` would have given it; see PastureEnviron.
pasture strips every client spelling of these fields (X_Pasture_Script_Name
too), and this side reads only the exact names pasture writes: both servers
drop header names with '_' (waitress itself, wsgiref in WsgirefServer), which
would otherwise share an environ key with them.
"""

import argparse
import os
import signal
import socket
import sys
import threading
import time
import traceback
from urllib.parse import unquote_to_bytes


def load_app(uri, name, relative_to, global_conf, pipeline):
    from paste.deploy import loadapp, loadfilter

    if not pipeline:
        return loadapp(uri, name=name or None, relative_to=relative_to, global_conf=global_conf)
    # pasture runs the leading filters itself (its balancer, which has no
    # Python side): build the rest as paste.deploy builds a pipeline.
    app = loadapp(uri, name=pipeline[-1], relative_to=relative_to, global_conf=global_conf)
    for f in reversed(pipeline[:-1]):
        app = loadfilter(uri, name=f, relative_to=relative_to, global_conf=global_conf)(app)
    return app


class PastureEnviron:
    """Turns the proxied request's environ into the client's one.

    REMOTE_ADDR: last hop of X-Forwarded-For (pasture appends the client);
    the hops before it stay as HTTP_X_FORWARDED_FOR, as the client sent them.
    wsgi.url_scheme: X-Forwarded-Proto. SCRIPT_NAME: X-Pasture-Script-Name
    (the urlmap prefixes pasture matched, percent-encoded as the request path
    is), decoded as the server decodes PATH_INFO and stripped from its front;
    '' without the header. pasture forwards the normalized path it routed on,
    so PATH_INFO starts with it. SERVER_NAME/SERVER_PORT: the
    public listener (PASTURE_SERVER_HOST / PASTURE_SERVER_PORT). CONTENT_TYPE
    and CONTENT_LENGTH default to '' and '0', as Paste's httpserver sets them.
    """

    def __init__(self, app, server_name, server_port):
        self.app = app
        self.server_name = server_name
        self.server_port = server_port
        self.lock = threading.Lock()
        self.in_flight = 0

    def __call__(self, environ, start_response):
        xff = environ.pop('HTTP_X_FORWARDED_FOR', None)
        if xff is not None:
            hops = [h.strip() for h in xff.split(',')]
            environ['REMOTE_ADDR'] = hops[-1]
            if len(hops) > 1:
                environ['HTTP_X_FORWARDED_FOR'] = ', '.join(hops[:-1])
        environ.pop('REMOTE_PORT', None)
        environ.pop('REMOTE_HOST', None)
        proto = environ.pop('HTTP_X_FORWARDED_PROTO', None)
        if proto:
            environ['wsgi.url_scheme'] = proto.split(',')[-1].strip()
            if environ['wsgi.url_scheme'] == 'https':
                environ['HTTPS'] = 'on'
        environ.pop('HTTP_X_FORWARDED_HOST', None)
        script = environ.pop('HTTP_X_PASTURE_SCRIPT_NAME', '')
        environ['SCRIPT_NAME'] = ''
        if script:
            # PEP 3333: PATH_INFO is the decoded bytes as latin-1, as waitress
            # and wsgiref make it.
            script = unquote_to_bytes(script).decode('latin-1')
            path = environ.get('PATH_INFO', '')
            if path.startswith(script) and (len(path) == len(script) or path[len(script)] == '/'):
                environ['PATH_INFO'] = path[len(script):]
            environ['SCRIPT_NAME'] = script
        environ['SERVER_SOFTWARE'] = 'pasture'  # waitress's ident=None would leave None (PEP 3333: a str)
        environ.setdefault('CONTENT_TYPE', '')
        environ.setdefault('CONTENT_LENGTH', '0')
        if self.server_name:
            environ['SERVER_NAME'] = self.server_name
        if self.server_port:
            environ['SERVER_PORT'] = self.server_port
        with self.lock:
            self.in_flight += 1
        try:
            result = self.app(environ, start_response)
        except BaseException:
            self.done()
            raise
        return (_SizedClosing if hasattr(result, '__len__') else _Closing)(result, self.done)

    def done(self):
        with self.lock:
            self.in_flight -= 1


class _Closing:
    """The app's iterable, counting the request done when the server closes it."""

    def __init__(self, result, on_close):
        self.result = result
        self.on_close = on_close

    def __iter__(self):
        return iter(self.result)

    def close(self):
        try:
            if hasattr(self.result, 'close'):
                self.result.close()
        finally:
            self.on_close()


class _SizedClosing(_Closing):
    """For a list result: servers look for __len__ on the type (waitress
    sets Content-Length from a one-item list), not on the instance."""

    def __len__(self):
        return len(self.result)


def module_files():
    files = []
    for m in list(sys.modules.values()):
        f = getattr(m, '__file__', None)
        if f and os.path.exists(f):
            files.append(f)
    return files


def watch_modules(interval, on_change, extra=()):
    def mtimes():
        out = {}
        for f in list(module_files()) + list(extra):
            try:
                out[f] = os.stat(f).st_mtime
            except OSError:
                pass
        return out

    def run():
        seen = mtimes()
        while True:
            time.sleep(interval)
            for f, t in mtimes().items():
                if seen.get(f, t) != t:
                    on_change(f)
                    return
                seen[f] = t

    threading.Thread(target=run, daemon=True, name='pasture-reload').start()


def make_server(app, sock, threads):
    try:
        from waitress.server import create_server
    except ImportError:
        return WsgirefServer(app, sock, threads)
    import logging
    logging.getLogger('waitress.queue').setLevel(logging.ERROR)  # "Task queue depth" under load
    # send_bytes=1: write each chunk the app yields at once (streaming).
    server = create_server(app, sockets=[sock], threads=threads, send_bytes=1,
                           clear_untrusted_proxy_headers=False, ident=None,
                           connection_limit=1000, channel_timeout=300)
    return WaitressServer(server)


class WaitressServer:
    name = 'waitress'

    def __init__(self, server):
        self.server = server

    def serve(self):
        self.server.run()

    def stop_accepting(self):
        # Runs in the main thread (a signal handler), like waitress's loop:
        # the listener leaves the poll map; open channels finish.
        try:
            self.server.accepting = False
            self.server.del_channel()
        except Exception:
            pass


class WsgirefServer:
    """The standard library's wsgiref, one thread per connection."""

    name = 'wsgiref'

    def __init__(self, app, sock, threads):
        import socketserver
        from wsgiref.simple_server import WSGIRequestHandler, WSGIServer

        class Handler(WSGIRequestHandler):
            def log_message(self, *args):
                pass

            def get_environ(self):
                # As waitress: a name with '_' would share an environ key with
                # its '-' spelling (X_Pasture_Script_Name and
                # X-Pasture-Script-Name are both HTTP_X_PASTURE_SCRIPT_NAME),
                # and only the exact fields pasture writes may set those.
                for name in set(self.headers.keys()):
                    if '_' in name:
                        del self.headers[name]
                return super().get_environ()

        class Server(socketserver.ThreadingMixIn, WSGIServer):
            daemon_threads = True

            def get_request(self):
                conn, addr = self.socket.accept()
                if not isinstance(addr, tuple):
                    # A unix socket's peer has no address; the peer is one of
                    # pasture's workers on this host, as over loopback TCP
                    # (REMOTE_ADDR comes from X-Forwarded-For anyway).
                    addr = ('127.0.0.1', 0)
                return conn, addr

        self.httpd = Server(('127.0.0.1', 0), Handler, bind_and_activate=False)
        self.httpd.socket.close()
        self.httpd.socket = sock
        addr = sock.getsockname()
        self.httpd.server_name = 'localhost'
        self.httpd.server_port = addr[1] if isinstance(addr, tuple) else 0
        self.httpd.setup_environ()
        self.httpd.set_app(app)

    def serve(self):
        self.httpd.serve_forever(poll_interval=0.2)

    def stop_accepting(self):
        threading.Thread(target=self.httpd.shutdown, daemon=True).start()


def no_core_dumps():
    """prctl(PR_SET_DUMPABLE, 0), as pasture's own processes do."""
    import ctypes
    PR_SET_DUMPABLE = 4
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) != 0:
        sys.stderr.write('pasture_wsgi: prctl(PR_SET_DUMPABLE, 0) failed: %s\n'
                         % os.strerror(ctypes.get_errno()))


def main(argv):
    p = argparse.ArgumentParser(prog='pasture_wsgi')
    p.add_argument('--uri', required=True, help="loadapp's URI: config:/abs/file.ini, egg:X, call:m:f")
    p.add_argument('--name', default='')
    p.add_argument('--relative-to', default=os.getcwd())
    p.add_argument('--pipeline', action='append', default=[],
                   help='instead of --name: filters (outermost first), then the app')
    p.add_argument('--var', action='append', default=[], help='global_conf entry k=v')
    p.add_argument('--listen-fd', type=int, default=-1)
    p.add_argument('--unix', default='')
    p.add_argument('--ready-fd', type=int, default=-1)
    p.add_argument('--threads', type=int, default=int(os.environ.get('PASTURE_APP_THREADS', '8')))
    args = p.parse_args(argv)

    signal.signal(signal.SIGINT, lambda *_: os._exit(0))
    if os.environ.get('PASTURE_NO_CORE_DUMPS') == '1':
        no_core_dumps()
    global_conf = dict(v.split('=', 1) for v in args.var)
    label = args.uri + ('#' + args.name if args.name else '')
    try:
        app = load_app(args.uri, args.name, args.relative_to, global_conf, args.pipeline)
    except BaseException:
        sys.stderr.write('pasture_wsgi: cannot load %s:\n' % label)
        traceback.print_exc()
        sys.stderr.flush()
        return 3

    if args.listen_fd >= 0:
        sock = socket.socket(fileno=args.listen_fd)
    elif args.unix:
        try:
            os.unlink(args.unix)
        except FileNotFoundError:
            pass
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.bind(args.unix)
        sock.listen(1024)
    else:
        sys.stderr.write('pasture_wsgi: need --listen-fd or --unix\n')
        return 2
    sock.setblocking(False)

    host = os.environ.get('PASTURE_SERVER_HOST', '')
    server_name = host
    wrapped = PastureEnviron(app, server_name, os.environ.get('PASTURE_SERVER_PORT', ''))
    server = make_server(wrapped, sock, args.threads)
    grace = float(os.environ.get('PASTURE_GRACEFUL_TIMEOUT', '30'))

    def drain_and_exit():
        deadline = time.monotonic() + grace
        while time.monotonic() < deadline and wrapped.in_flight > 0:
            time.sleep(0.05)
        time.sleep(0.2)  # let the server flush the last responses
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(0)

    stopping = []

    def graceful(*_):
        if stopping:
            return
        stopping.append(1)
        server.stop_accepting()
        threading.Thread(target=drain_and_exit, daemon=True).start()

    signal.signal(signal.SIGTERM, graceful)
    reload_every = float(os.environ.get('PASTURE_RELOAD', '0') or 0)
    if reload_every > 0:
        def changed(path):
            sys.stderr.write('pasture_wsgi: %s changed; restarting %s\n' % (path, label))
            sys.stderr.flush()
            os.kill(os.getpid(), signal.SIGTERM)
        conf_file = args.uri[7:] if args.uri.startswith('config:') else None
        watch_modules(reload_every, changed, [conf_file] if conf_file else [])

    if args.ready_fd >= 0:
        try:
            os.write(args.ready_fd, b'ready %d %s\n' % (os.getpid(), server.name.encode()))
        except OSError:
            pass
        os.close(args.ready_fd)
    try:
        server.serve()
    except (KeyboardInterrupt, SystemExit):
        pass
    if stopping:  # the loop ended because accepting stopped; keep flushing
        while True:
            time.sleep(1)
    return 0


if __name__ == '__main__':
    sys.exit(main(sys.argv[1:]))
