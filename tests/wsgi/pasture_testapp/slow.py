"""The test app behind an import that takes 1.5 s once the package holds a
file named SLOW_IMPORT (tests/wsgi/slow.ini): an app slow to load, as a
large project is, from the next load on."""
import os
import time

if os.path.exists(os.path.join(os.path.dirname(__file__), 'SLOW_IMPORT')):
    time.sleep(1.5)

from pasture_testapp import make_app  # noqa: E402,F401
