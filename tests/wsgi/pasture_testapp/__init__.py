"""A WSGI app for pasture's integration tests (tests/integration/wsgi_test.cc).

Routes: /text, /json, /stream, /echo (POST), /lines (POST: wsgi.input by
readline, readlines and iteration), /write (the write() callable),
/exc_info (start_response again with exc_info), /unavailable (the app's
own 503), /file (wsgi.file_wrapper when the server has one), /empty (204),
/environ, /not_str (CGI keys whose value is not a str), /raise (the
query string, if any, ends the error's message),
/deep_raise (an error with a long traceback), /version,
/validated ("yes" under the validator),
/invalid (headers given as a tuple: the validator's AssertionError, for the
tests that check it is heard).
Served by `pasture serve` (in-process or in pasture's app processes) and
by `paster3 serve` on the same INI file, so responses can be compared.

PASTURE_TEST_VALIDATE=1 in the environment: every factory here returns its
app wrapped in wsgiref.validate.validator, which raises AssertionError (or
prints "Exception ignored" for an iterable never closed) on any WSGI
violation, the server's or the app's.
"""
import io
import json
import os
import sys
import time

from pasture_testapp import version

ENVIRON_KEYS = ('REQUEST_METHOD', 'SCRIPT_NAME', 'PATH_INFO', 'QUERY_STRING', 'HTTP_HOST',
                'REMOTE_ADDR', 'wsgi.url_scheme', 'SERVER_NAME', 'SERVER_PORT', 'SERVER_PROTOCOL',
                'CONTENT_TYPE', 'CONTENT_LENGTH', 'HTTP_X_TEST', 'HTTP_X_FORWARDED_FOR',
                'HTTP_X_FORWARDED_PROTO', 'HTTP_X_FORWARDED_HOST', 'HTTP_X_PASTURE_SCRIPT_NAME',
                'testapp.filtered')


class App:
    def __init__(self, greeting='hello'):
        self.greeting = greeting

    def __call__(self, environ, start_response):
        path = environ.get('PATH_INFO', '')
        if path == '/text':
            return self.reply(start_response, '200 OK', 'text/plain', '%s from testapp\n' % self.greeting)
        if path == '/json':
            body = json.dumps({'greeting': self.greeting, 'n': [1, 2, 3], 'query': environ.get('QUERY_STRING', '')},
                              sort_keys=True)
            return self.reply(start_response, '200 OK', 'application/json', body)
        if path == '/stream':
            start_response('200 OK', [('Content-Type', 'text/plain')])
            return self.stream()
        if path == '/echo':
            n = int(environ.get('CONTENT_LENGTH') or 0)
            data = environ['wsgi.input'].read(n) if n else b''
            start_response('200 OK', [('Content-Type', 'application/octet-stream'),
                                      ('Content-Length', str(len(data)))])
            return [data]
        if path == '/lines':
            inp = environ['wsgi.input']
            lines = [inp.readline(), inp.readline(2)]
            lines += inp.readlines(1)
            lines += [line for line in inp]
            return self.reply(start_response, '200 OK', 'application/json',
                              json.dumps([line.decode('latin-1') for line in lines]))
        if path == '/write':
            write = start_response('200 OK', [('Content-Type', 'text/plain')])
            write(b'written, ')
            write(b'then ')
            return [b'returned\n']
        if path == '/exc_info':
            start_response('200 OK', [('Content-Type', 'text/plain')])
            try:
                raise ValueError('testapp: /exc_info')
            except ValueError:
                start_response('500 Internal Server Error', [('Content-Type', 'text/plain'),
                                                             ('Content-Length', '8')], sys.exc_info())
            return [b'handled\n']
        if path == '/unavailable':
            # The app's own 503 (maintenance...); the query names a file that
            # counts the calls.
            if environ.get('QUERY_STRING'):
                with open(environ['QUERY_STRING'], 'a') as f:
                    f.write('x')
            return self.reply(start_response, '503 Service Unavailable', 'text/plain', 'down for maintenance\n')
        if path == '/file':
            f = io.BytesIO(b'from a file\n' * 300)
            start_response('200 OK', [('Content-Type', 'text/plain')])
            wrapper = environ.get('wsgi.file_wrapper')
            return wrapper(f, 1024) if wrapper else iter(lambda: f.read(1024), b'')
        if path == '/empty':
            start_response('204 No Content', [])
            return []
        if path == '/not_str':
            # PEP 3333: CGI variables (keys without a dot) are native strings.
            bad = sorted('%s=%s' % (k, type(v).__name__) for k, v in environ.items()
                         if '.' not in k and type(v) is not str)
            return self.reply(start_response, '200 OK', 'application/json', json.dumps(bad))
        if path == '/validated':
            validated = type(environ['wsgi.errors']).__name__ == 'ErrorWrapper'
            return self.reply(start_response, '200 OK', 'text/plain', 'yes\n' if validated else 'no\n')
        if path == '/invalid':
            start_response('200 OK', (('Content-Type', 'text/plain'),))
            return [b'a tuple of headers\n']
        if path == '/environ':
            env = {k: environ[k] for k in ENVIRON_KEYS if k in environ}
            return self.reply(start_response, '200 OK', 'application/json', json.dumps(env, sort_keys=True))
        if path == '/version':
            body = (version.VERSION + '\n').encode()
            start_response('200 OK', [('Content-Type', 'text/plain'), ('Content-Length', str(len(body))),
                                      ('X-Testapp-Pid', str(os.getpid()))])
            return [body]
        if path == '/slow':
            time.sleep(0.2)
            return self.reply(start_response, '200 OK', 'text/plain', 'slow\n')
        if path == '/deep_raise':
            return deep(40)
        if path == '/raise':
            query = environ.get('QUERY_STRING', '')
            raise RuntimeError('testapp: /raise was asked to fail' + (': ' + query if query else ''))
        return self.reply(start_response, '404 Not Found', 'text/plain', 'not found: %s\n' % path)

    @staticmethod
    def stream():
        for i in range(5):
            yield ('chunk %d\n' % i).encode()
            time.sleep(0.01)

    @staticmethod
    def reply(start_response, status, ctype, text):
        body = text.encode()
        start_response(status, [('Content-Type', ctype), ('Content-Length', str(len(body)))])
        return [body]


def deep(n):
    """Raises under 2n frames of two alternating functions (a long
    traceback: Python folds only a frame repeated back to back)."""
    if n == 0:
        raise RuntimeError('testapp: the end of a deep stack')
    return _deeper(n)


def _deeper(n):
    return deep(n - 1)


def validated(app):
    """`app` in wsgiref's validator when the tests ask for it (see above)."""
    if os.environ.get('PASTURE_TEST_VALIDATE') == '1':
        from wsgiref.validate import validator
        return validator(app)
    return app


def make_app(global_conf, greeting='hello', **local_conf):
    """paste.app_factory"""
    return validated(App(greeting))


def make_validate_filter(global_conf, **local_conf):
    """paste.filter_factory: the validator alone (nothing without the switch),
    for the front of a pipeline whose outer filters are not the test app's."""
    return validated


def make_filter(global_conf, **local_conf):
    """paste.filter_factory: marks the environ and adds a response header."""
    def filt(app):
        def wrapped(environ, start_response):
            environ['testapp.filtered'] = 'yes'

            def sr(status, headers, exc_info=None):
                return start_response(status, headers + [('X-Testapp-Filter', 'on')], exc_info)
            return app(environ, sr)
        return validated(wrapped)
    return filt
