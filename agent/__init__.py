"""The host side of the service, with no Django: psutil readings in, snapshots out,
and `monitor-agent`, which streams them to a server.

Installed on its own as the `monitor-agent` distribution (agent/pyproject.toml).
"""

__version__ = "0.1.0"
