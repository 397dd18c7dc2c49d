"""The service's own settings with STATIC_ROOT moved to UNCOLLECTED_STATIC_ROOT: a web
worker of a deployment that skipped (or did not repeat) collectstatic."""

import os

from monitor.settings import *  # noqa: F403

STATIC_ROOT = os.environ["UNCOLLECTED_STATIC_ROOT"]
