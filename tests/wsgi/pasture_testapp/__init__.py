"""A WSGI app for pasture's integration tests (tests/integration/wsgi_test.cc).

Routes: /text, /json, /stream, /echo (POST), /environ, /raise, /version.
Served by `pasture serve` (hosted in pasture's app processes) and by
`paster3 serve` on the same INI file, so responses can be compared.
"""
import json
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
        if path == '/environ':
            env = {k: environ[k] for k in ENVIRON_KEYS if k in environ}
            return self.reply(start_response, '200 OK', 'application/json', json.dumps(env, sort_keys=True))
        if path == '/version':
            return self.reply(start_response, '200 OK', 'text/plain', version.VERSION + '\n')
        if path == '/slow':
            time.sleep(0.2)
            return self.reply(start_response, '200 OK', 'text/plain', 'slow\n')
        if path == '/raise':
            raise RuntimeError('testapp: /raise was asked to fail')
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


def make_app(global_conf, greeting='hello', **local_conf):
    """paste.app_factory"""
    return App(greeting)


def make_filter(global_conf, **local_conf):
    """paste.filter_factory: marks the environ and adds a response header."""
    def filt(app):
        def wrapped(environ, start_response):
            environ['testapp.filtered'] = 'yes'

            def sr(status, headers, exc_info=None):
                return start_response(status, headers + [('X-Testapp-Filter', 'on')], exc_info)
            return app(environ, sr)
        return wrapped
    return filt
