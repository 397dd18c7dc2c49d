"""Numbers read from people (environment variables, command-line flags), each within
its bounds, and the bounds more than one reader shares."""

import argparse
from collections.abc import Callable
from typing import NamedTuple

# The biggest frame a viewer may send (METRICS_WS_MAX_MESSAGE_BYTES is at most this;
# bigger ones close the socket with 4009).
VIEWER_MAX_MESSAGE_BYTES = 65536
# daphne's --websocket-max-message-size as the service runs it: bigger client
# messages are refused by daphne itself (close 1009), before any consumer. Above the
# agents' limit (agent.protocol.MAX_FRAME_BYTES, 256 KiB), so that a frame just over
# it gets the agent socket's own 4009.
DAPHNE_MAX_MESSAGE_BYTES = 1024 * 1024


class Bounds(NamedTuple):
    """The smallest and the largest value a number may take."""

    minimum: float
    maximum: float

    def parse(self, raw: str, *, whole: bool = False, unit: str = "") -> float:
        """Return the number `raw` spells, or raise ValueError saying what is wrong
        (the message reads on after the name of what was read)."""
        try:
            value = int(raw) if whole else float(raw)
        except ValueError:
            kind = "a whole number" if whole else "a number"
            raise ValueError(f"must be {kind}, got {raw!r}") from None
        # NaN compares false with everything, so it is refused here too.
        if not self.minimum <= value <= self.maximum:
            raise ValueError(
                f"must be between {self.minimum:g} and {self.maximum:g}{unit}, "
                f"got {raw!r}"
            )
        return value

    def argument(
        self, *, whole: bool = False, unit: str = ""
    ) -> Callable[[str], float]:
        """An argparse `type` that parses a flag's value within these bounds."""

        def parse(raw: str) -> float:
            try:
                return self.parse(raw, whole=whole, unit=unit)
            except ValueError as error:
                raise argparse.ArgumentTypeError(str(error)) from None

        return parse


# Seconds between snapshots: METRICS_INTERVAL and every --interval flag.
INTERVAL_SECONDS = Bounds(0.5, 3600)
# The argparse type of every --interval flag.
parse_interval = INTERVAL_SECONDS.argument(unit=" seconds")
