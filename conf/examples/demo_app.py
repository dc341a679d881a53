"""The demo's Python WSGI app, served in-process by pasture's workers.

conf/examples/demo.ini mounts it at /app (scripts/demo puts this folder on
PYTHONPATH). Try:
    curl http://127.0.0.1:8080/app
    curl http://127.0.0.1:8080/app/env
    curl -d 'name=you' http://127.0.0.1:8080/app/hello
"""
import json
import os
from urllib.parse import parse_qs


def make_app(global_conf, greeting='Hello', **local_conf):
    """paste.app_factory"""
    served = [0]

    def app(environ, start_response):
        served[0] += 1
        path = environ.get('PATH_INFO', '')
        if path == '/env':
            keys = sorted(k for k in environ if k.isupper() or k.startswith('wsgi.'))
            body = json.dumps({k: str(environ[k]) for k in keys}, indent=1) + '\n'
            ctype = 'application/json'
        elif path == '/hello' and environ['REQUEST_METHOD'] == 'POST':
            n = int(environ.get('CONTENT_LENGTH') or 0)
            form = parse_qs(environ['wsgi.input'].read(n).decode('utf-8', 'replace'))
            body = '%s, %s!\n' % (greeting, form.get('name', ['stranger'])[0])
            ctype = 'text/plain; charset=utf-8'
        else:
            body = ('%s from a Python WSGI app, called in-process by pasture worker pid %d '
                    '(request %d of this worker; SCRIPT_NAME=%r PATH_INFO=%r)\n'
                    % (greeting, os.getpid(), served[0], environ['SCRIPT_NAME'], path))
            ctype = 'text/plain; charset=utf-8'
        data = body.encode('utf-8')
        start_response('200 OK', [('Content-Type', ctype), ('Content-Length', str(len(data)))])
        return [data]

    return app
