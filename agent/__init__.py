"""The host side of the service, with no Django: psutil readings in, snapshots out.

Installed on its own as the `monitor-agent` distribution (agent/pyproject.toml).
"""
