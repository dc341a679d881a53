"""A WSGI app for pasture's embedded-mode tests (tests/integration/wsgi_embedded_test.cc).

Each route exercises one part of PEP 3333 as pasture's in-process server
(worker/wsgi/) implements it; the test asserts on the bytes on the wire.
`record_to` (a local_conf key; the INI sets it from the command line's
record_dir=..., a global_conf var as with paster) names a directory that
receives what the test cannot see on the wire: close() calls (the file
`closed`, one tag a line). The
environment variable EMBEDAPP_IMPORTS names a file this module appends its
pid to when it is imported (the preload test).

Routes (query string `k=v&...`):
  /pid?ms=                this process's pid (after sleeping ms)
  /text                  "hello\n" with Content-Length
  /environ               a JSON object of the environ keys in ENVIRON_KEYS
  /write                 write() twice, then a returned list, no Content-Length
  /write_cl              the same with Content-Length
  /exc_before            start_response 200, then again with exc_info: 500 and its own body
  /exc_after             yields, then start_response with exc_info (re-raised: abort)
  /raise                 raises before start_response
  /close?tag=&mode=&ms=  an iterable recording close(): mode=normal|raise|endless (after sleeping ms)
  /input?mode=           wsgi.input read as mode says, each piece as "[len]bytes"
  /echo                  the body back, with X-Content-Length (environ CONTENT_LENGTH)
  /file?path=&cl=&tag=&real=&skip=
                         wsgi.file_wrapper over a file from byte skip (Content-Length when
                         cl=1): a real file object when real=1, else a file-like without fileno()
  /gen                   a generator, no Content-Length
  /onelist               [b"one item"], no Content-Length
  /status?code=&body=&cl= that status, optionally yielding bytes, with Content-Length: cl if given
  /conn_close            "Connection: close" from the app
  /cl_short /cl_long     Content-Length smaller / larger than the body
  /big?size=&cl=         a pattern body of size bytes in 64 KiB items (Content-Length when cl=1)
  /write_big?size=       a pattern body of size bytes through write() (with Content-Length)
  /sleep?ms=&tag=        sleeps, then answers "slept <tag>\n"
  /hang                  sleeps for an hour
  /crash                 reads address 0 through ctypes (SIGSEGV)
  /write_then?w=&l=&cl=  write(w bytes of 'A'), then return [l bytes of 'B'] ([] for l=0);
                         Content-Length: cl if given
  /write_file?path=      Content-Length: 10, write(10 bytes), then a file_wrapper over path
  /bgwrite               start_response, then write() from another thread (records the
                         outcome in `bgwrite`), then "ok"
  /ctl_status            a status line with a NUL byte
  /conn_Close            "Connection: Close" (any case closes)
At exit (atexit) the process appends its pid to the record `atexit`.
"""
import ctypes
import io
import json
import os
import sys
import time

if os.environ.get('EMBEDAPP_SIGPIPE_DFL'):  # what a CLI-minded app does at import
    import signal
    signal.signal(signal.SIGPIPE, signal.SIG_DFL)

if os.environ.get('EMBEDAPP_IMPORTS'):
    with open(os.environ['EMBEDAPP_IMPORTS'], 'a') as f:
        f.write('%d\n' % os.getpid())

ENVIRON_KEYS = ('REQUEST_METHOD', 'SCRIPT_NAME', 'PATH_INFO', 'QUERY_STRING', 'SERVER_NAME', 'SERVER_PORT',
                'SERVER_PROTOCOL', 'REMOTE_ADDR', 'CONTENT_LENGTH', 'CONTENT_TYPE', 'HTTP_HOST',
                'HTTPS', 'HTTP_X_CLIENT_SUBJECT', 'wsgi.url_scheme', 'wsgi.multithread', 'wsgi.multiprocess', 'wsgi.run_once', 'wsgi.version')

# Byte i of a pattern body is (i * 31 + 7) & 0xff (tests/support/pattern.h);
# the pattern repeats every 256 bytes, so one 64 KiB block serves any
# 256-aligned offset.
BLOCK = bytes(((i * 31 + 7) & 0xff) for i in range(65536))


def query(environ):
    out = {}
    for part in environ.get('QUERY_STRING', '').split('&'):
        if '=' in part:
            k, v = part.split('=', 1)
            out[k] = v
    return out


class Recorder:
    def __init__(self, record_dir):
        self.dir = record_dir

    def note(self, name, line):
        if not self.dir:
            return
        with open(os.path.join(self.dir, name), 'a') as f:
            f.write(line + '\n')


class ClosingIter:
    """An iterable whose close() is recorded; mode says how it ends."""

    def __init__(self, rec, tag, mode):
        self.rec, self.tag, self.mode, self.i = rec, tag, mode, 0

    def __iter__(self):
        return self

    def __next__(self):
        self.i += 1
        if self.mode == 'endless':
            return BLOCK
        if self.i == 1:
            return b'part1 '
        if self.mode == 'raise':
            raise RuntimeError('embedapp: raised mid-iteration')
        if self.i == 2:
            return b'part2'
        raise StopIteration

    def close(self):
        self.rec.note('closed', '%s %d' % (self.tag, self.i))


class RecordingFile:
    """A file-like for wsgi.file_wrapper whose close() is recorded."""

    def __init__(self, rec, path, tag):
        self.rec, self.f, self.tag = rec, open(path, 'rb'), tag

    def read(self, n=-1):
        return self.f.read(n)

    def close(self):
        self.f.close()
        self.rec.note('closed', 'file ' + self.tag)


class RecordingFileIO(io.FileIO):
    """A real file (it has fileno(): pasture may sendfile it) whose close() is recorded."""

    def __init__(self, rec, path, tag):
        super().__init__(path, 'rb')
        self.rec, self.tag = rec, tag

    def close(self):
        if not self.closed:
            self.rec.note('closed', 'file ' + self.tag)
        super().close()


def read_input(inp, mode):
    if mode == 'read':
        return [inp.read()]
    if mode == 'readn':
        pieces = []
        while True:
            p = inp.read(7)
            if not p:
                return pieces
            pieces.append(p)
    if mode == 'readline':
        pieces = []
        while True:
            p = inp.readline()
            if not p:
                return pieces
            pieces.append(p)
    if mode == 'readline5':
        pieces = []
        while True:
            p = inp.readline(5)
            if not p:
                return pieces
            pieces.append(p)
    if mode == 'iter':
        return [line for line in inp]
    if mode == 'readlines':
        return inp.readlines()
    raise ValueError('unknown input mode %r' % mode)


class App:
    def __init__(self, record_dir):
        self.rec = Recorder(record_dir)

    def __call__(self, environ, start_response):
        path = environ.get('PATH_INFO', '')
        q = query(environ)
        handler = getattr(self, 'r_' + path.strip('/'), None)
        if handler is None:
            return reply(start_response, '404 Not Found', b'not found\n')
        return handler(environ, start_response, q)

    def r_pid(self, environ, start_response, q):
        if q.get('ms'):
            time.sleep(int(q['ms']) / 1000.0)
        return reply(start_response, '200 OK', b'%d' % os.getpid())

    def r_text(self, environ, start_response, q):
        return reply(start_response, '200 OK', b'hello\n')

    def r_environ(self, environ, start_response, q):
        env = {k: environ[k] for k in ENVIRON_KEYS if k in environ}
        env['wsgi.version'] = list(env.get('wsgi.version', ()))
        return reply(start_response, '200 OK', json.dumps(env, sort_keys=True).encode(), 'application/json')

    def r_write(self, environ, start_response, q):
        write = start_response('200 OK', [('Content-Type', 'text/plain')])
        write(b'write1 ')
        write(b'write2 ')
        return [b'iter1 ', b'iter2']

    def r_write_cl(self, environ, start_response, q):
        write = start_response('200 OK', [('Content-Type', 'text/plain'), ('Content-Length', '25')])
        write(b'write1 ')
        write(b'write2 ')
        return iter([b'iter1 ', b'iter2'])

    def r_exc_before(self, environ, start_response, q):
        start_response('200 OK', [('Content-Type', 'text/plain'), ('X-First', 'yes')])
        try:
            raise ValueError('embedapp: changed its mind')
        except ValueError:
            body = b'the app says: it failed\n'
            start_response('500 Internal Server Error',
                           [('Content-Type', 'text/plain'), ('Content-Length', str(len(body)))], sys.exc_info())
            return [body]

    def r_exc_after(self, environ, start_response, q):
        start_response('200 OK', [('Content-Type', 'text/plain')])

        def gen():
            yield b'partial body '
            try:
                raise ValueError('embedapp: failed after the head')
            except ValueError:
                start_response('500 Internal Server Error', [('Content-Type', 'text/plain')], sys.exc_info())
            yield b'never sent'  # start_response re-raised: not reached
        return gen()

    def r_raise(self, environ, start_response, q):
        raise RuntimeError('embedapp: /raise was asked to fail')

    def r_close(self, environ, start_response, q):
        if q.get('ms'):
            time.sleep(int(q['ms']) / 1000.0)
        start_response('200 OK', [('Content-Type', 'application/octet-stream')])
        return ClosingIter(self.rec, q.get('tag', '-'), q.get('mode', 'normal'))

    def r_input(self, environ, start_response, q):
        pieces = read_input(environ['wsgi.input'], q.get('mode', 'read'))
        body = b''.join(b'[%d]' % len(p) + p for p in pieces)
        return reply(start_response, '200 OK', body)

    def r_echo(self, environ, start_response, q):
        data = environ['wsgi.input'].read()
        start_response('200 OK', [('Content-Type', 'application/octet-stream'), ('Content-Length', str(len(data))),
                                  ('X-Content-Length', environ.get('CONTENT_LENGTH', '<none>'))])
        return [data]

    def r_file(self, environ, start_response, q):
        if q.get('real') == '1':
            f = RecordingFileIO(self.rec, q['path'], q.get('tag', '-'))
        else:
            f = RecordingFile(self.rec, q['path'], q.get('tag', '-'))
        skip = int(q.get('skip', '0'))
        if skip:
            f.read(skip)
        headers = [('Content-Type', 'application/octet-stream')]
        if q.get('cl') == '1':
            headers.append(('Content-Length', str(os.path.getsize(q['path']) - skip)))
        start_response('200 OK', headers)
        return environ['wsgi.file_wrapper'](f, 8192)

    def r_gen(self, environ, start_response, q):
        start_response('200 OK', [('Content-Type', 'text/plain')])
        return (b'gen%d\n' % i for i in range(3))

    def r_onelist(self, environ, start_response, q):
        start_response('200 OK', [('Content-Type', 'text/plain')])
        return [b'one item']

    def r_status(self, environ, start_response, q):
        code = q.get('code', '204')
        headers = [('X-Status', code)]
        if q.get('cl'):
            headers.append(('Content-Length', q['cl']))
        start_response(code + ' Status', headers)
        if q.get('body'):
            return (b for b in [q['body'].encode()])
        return []

    def r_conn_close(self, environ, start_response, q):
        return reply(start_response, '200 OK', b'bye\n', extra=[('Connection', 'close')])

    def r_cl_short(self, environ, start_response, q):
        start_response('200 OK', [('Content-Type', 'text/plain'), ('Content-Length', '5')])
        return iter([b'01234', b'56789'])

    def r_cl_long(self, environ, start_response, q):
        start_response('200 OK', [('Content-Type', 'text/plain'), ('Content-Length', '100')])
        return iter([b'0123456789'])

    def r_big(self, environ, start_response, q):
        size = int(q.get('size', '0'))
        headers = [('Content-Type', 'application/octet-stream')]
        if q.get('cl') == '1':
            headers.append(('Content-Length', str(size)))
        start_response('200 OK', headers)

        def gen():
            left = size
            while left > 0:
                n = min(left, len(BLOCK))
                yield BLOCK if n == len(BLOCK) else BLOCK[:n]
                left -= n
        return gen()

    def r_write_big(self, environ, start_response, q):
        size = int(q.get('size', '0'))
        write = start_response('200 OK', [('Content-Type', 'application/octet-stream'), ('Content-Length', str(size))])
        left = size
        while left > 0:
            n = min(left, len(BLOCK))
            write(BLOCK if n == len(BLOCK) else BLOCK[:n])
            left -= n
        return []

    def r_sleep(self, environ, start_response, q):
        time.sleep(int(q.get('ms', '300')) / 1000.0)
        return reply(start_response, '200 OK', b'slept %s\n' % q.get('tag', '-').encode())

    def r_hang(self, environ, start_response, q):
        time.sleep(3600)
        return reply(start_response, '200 OK', b'woke\n')

    def r_crash(self, environ, start_response, q):
        ctypes.string_at(0)
        return reply(start_response, '200 OK', b'survived\n')


def _r_write_then(self, environ, start_response, q):
    headers = [('Content-Type', 'text/plain')]
    if q.get('cl'):
        headers.append(('Content-Length', q['cl']))
    w = start_response('200 OK', headers)
    w(b'A' * int(q.get('w', '0')))
    n = int(q.get('l', '0'))
    return [b'B' * n] if n else []


def _r_write_file(self, environ, start_response, q):
    w = start_response('200 OK', [('Content-Type', 'text/plain'), ('Content-Length', '10')])
    w(b'0123456789')
    return environ['wsgi.file_wrapper'](open(q['path'], 'rb'))


def _r_bgwrite(self, environ, start_response, q):
    import threading
    w = start_response('200 OK', [('Content-Type', 'text/plain'), ('Content-Length', '2')])

    def other():
        try:
            w(b'XX')
            self.rec.note('bgwrite', 'accepted')
        except Exception as e:
            self.rec.note('bgwrite', type(e).__name__)
    t = threading.Thread(target=other)
    t.start()
    t.join()
    return [b'ok']


def _r_ctl_status(self, environ, start_response, q):
    return reply(start_response, '200 OK\x00x', b'never\n')


def _r_conn_Close(self, environ, start_response, q):
    return reply(start_response, '200 OK', b'bye\n', extra=[('Connection', 'Close')])


App.r_write_then = _r_write_then
App.r_write_file = _r_write_file
App.r_bgwrite = _r_bgwrite
App.r_ctl_status = _r_ctl_status
App.r_conn_Close = _r_conn_Close


def reply(start_response, status, body, ctype='text/plain', extra=()):
    start_response(status, [('Content-Type', ctype), ('Content-Length', str(len(body)))] + list(extra))
    return [body]


def make_app(global_conf, record_to='', **local_conf):
    """paste.app_factory"""
    app = App(record_to)
    if record_to:
        import atexit
        atexit.register(lambda: app.rec.note('atexit', str(os.getpid())))
    return app
