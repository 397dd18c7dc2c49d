"""Which web pages may open a socket: Channels' check against ALLOWED_HOSTS, with
each Origin's answer remembered."""

import functools
from urllib.parse import ParseResult

from channels.security.websocket import AllowedHostsOriginValidator, OriginValidator


class RememberingOriginValidator(OriginValidator):
    """Channels' OriginValidator, answering again for an Origin it has seen.

    Channels parses every allowed host pattern again on every handshake, a tenth of
    a connect's cost here; the answer for one Origin never changes.
    """

    def __init__(self, application, allowed_origins: list[str]) -> None:
        super().__init__(application, allowed_origins)
        self.answers = functools.lru_cache(maxsize=1024)(super().valid_origin)

    def valid_origin(self, parsed_origin: ParseResult | None) -> bool:
        return self.answers(parsed_origin)


def AllowedHostsOriginCheck(application) -> RememberingOriginValidator:
    """Wrap an ASGI app so that only pages of ALLOWED_HOSTS may open a socket
    (with DEBUG and no ALLOWED_HOSTS: localhost), as Channels'
    AllowedHostsOriginValidator does."""
    allowed = AllowedHostsOriginValidator(application).allowed_origins
    return RememberingOriginValidator(application, allowed)
