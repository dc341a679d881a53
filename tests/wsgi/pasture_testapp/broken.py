"""Fails at import time: pasture must exit non-zero and show this traceback."""
import pasture_testapp_no_such_module  # noqa: F401


def make_app(global_conf, **local_conf):
    raise AssertionError('not reached')
