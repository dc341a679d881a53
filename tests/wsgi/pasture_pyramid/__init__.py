"""A small Pyramid app for pasture's tests and `scripts/bench --apps`.

Loaded through its paste.deploy factory (`use = egg:...` is not needed:
tests/wsgi/pyramid.ini names it with `paste.app_factory`), as a real
Pyramid project's `main(global_config, **settings)` is. Routes:

  GET  /                  "Hello from Pyramid" (text/plain)
  GET  /hello/{name}      JSON greeting, with the query string echoed
  GET  /form              an HTML form
  POST /form              the parsed form fields as JSON (application/x-www-form-urlencoded)
  GET  /stream            a streamed body (app_iter of 20 chunks, no Content-Length)
  GET  /redirect          302 to /hello/redirected
  GET  /missing           Pyramid's own 404 page
  GET  /error             a view that raises (the server's 500)
"""
import json

from pyramid.config import Configurator
from pyramid.httpexceptions import HTTPFound
from pyramid.response import Response


def index(request):
    return Response('Hello from Pyramid\n', content_type='text/plain')


def hello(request):
    body = {'hello': request.matchdict['name'], 'query': dict(request.GET),
            'script_name': request.script_name, 'path_info': request.path_info,
            'url': request.url}
    return Response(json.dumps(body, sort_keys=True), content_type='application/json', charset='utf-8')


FORM = ('<!doctype html><title>form</title><form method="post" action="form">'
        '<input name="a"><input name="b"><button>send</button></form>\n')


def form(request):
    if request.method == 'POST':
        fields = {k: request.POST.getall(k) for k in request.POST.keys()}
        return Response(json.dumps(fields, sort_keys=True), content_type='application/json', charset='utf-8')
    return Response(FORM, content_type='text/html')


def stream(request):
    def chunks():
        for i in range(20):
            yield ('line %d of the stream\n' % i).encode()
    r = Response(content_type='text/plain')
    r.app_iter = chunks()
    return r


def redirect(request):
    return HTTPFound(location=request.route_url('hello', name='redirected'))


def error(request):
    raise RuntimeError('pasture_pyramid: /error was asked to fail')


def main(global_config, **settings):
    config = Configurator(settings=settings)
    config.add_route('index', '/')
    config.add_route('hello', '/hello/{name}')
    config.add_route('form', '/form')
    config.add_route('stream', '/stream')
    config.add_route('redirect', '/redirect')
    config.add_route('error', '/error')
    config.add_view(index, route_name='index')
    config.add_view(hello, route_name='hello')
    config.add_view(form, route_name='form')
    config.add_view(stream, route_name='stream')
    config.add_view(redirect, route_name='redirect')
    config.add_view(error, route_name='error')
    return config.make_wsgi_app()
