"""WSGI apps for `scripts/bench --apps` (scripts/bench.d/apps.sh).

Loaded through paste.deploy by every server that reads an INI
(scripts/bench.d/wsgi/hello.ini, sleep.ini), and as module:callable by
those that don't (waitress-serve --call bench_apps:from_ini, which loads
the INI named by $BENCH_APPS_INI).

  hello   b"Hello, world!\\n" with Content-Length: the least a WSGI app does
  sleep   time.sleep(ms/1000) then b"slept\\n": a request that waits (I/O,
          a database) without using the CPU; shows a server's concurrency
"""
import os
import time

HELLO = b"Hello, world!\n"
SLEPT = b"slept\n"


def hello(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain"),
                              ("Content-Length", str(len(HELLO)))])
    return [HELLO]


def make_sleep(seconds):
    def sleep(environ, start_response):
        time.sleep(seconds)
        start_response("200 OK", [("Content-Type", "text/plain"),
                                  ("Content-Length", str(len(SLEPT)))])
        return [SLEPT]
    return sleep



def hello_factory(global_conf, **settings):
    """paste.app_factory for hello."""
    return hello


def sleep_factory(global_conf, ms="20", **settings):
    """paste.app_factory for sleep; `ms = 20` in the app section."""
    return make_sleep(int(ms) / 1000.0)


def from_ini():
    """waitress-serve --call bench_apps:from_ini: the [app:main] of
    $BENCH_APPS_INI, loaded as paste.deploy's loadapp does.

    waitress logs "Task queue depth is N" whenever a request waits for a
    thread, i.e. all the time under the benchmark's load: silenced, as
    pasture's app processes (python/pasture_wsgi.py) silence it."""
    import logging
    from paste.deploy import loadapp
    logging.getLogger("waitress.queue").setLevel(logging.ERROR)
    return loadapp("config:" + os.path.abspath(os.environ["BENCH_APPS_INI"]))
