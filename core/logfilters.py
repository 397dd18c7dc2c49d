"""Log records made readable before they are written (monitor/settings.py LOGGING).

A request for a host name the service does not serve is the client's mistake, or
a setting to change, not a crash: one line naming DJANGO_ALLOWED_HOSTS (the
variable that sets Django's ALLOWED_HOSTS here), and no traceback.
"""

import logging
import re

SETTING = re.compile(r"\bALLOWED_HOSTS\b")


class DisallowedHostLine(logging.Filter):
    """Rewrites django.security.DisallowedHost records into one line."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = SETTING.sub("DJANGO_ALLOWED_HOSTS", record.getMessage())
        record.msg = f"{message} Answered with HTTP 400."
        record.args = None
        record.exc_info = None
        record.exc_text = None
        return True
