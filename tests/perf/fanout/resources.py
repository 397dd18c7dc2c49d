"""What processes and the kernel use: CPU time, memory, sockets, queues, limits."""

import resource
from dataclasses import dataclass
from pathlib import Path

import psutil


def cpu_seconds(processes: list[psutil.Process]) -> float | None:
    """Return the user + system CPU seconds of the processes, None if one is gone."""
    total = 0.0
    try:
        for process in processes:
            times = process.cpu_times()
            total += times.user + times.system
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return None
    return total


def rss_bytes(processes: list[psutil.Process]) -> int | None:
    """Return the summed resident memory of the processes, None if one is gone."""
    try:
        return sum(process.memory_info().rss for process in processes)
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return None


def count_sockets(process: psutil.Process, port: int) -> int | None:
    """Return the established TCP connections a server process holds on `port`."""
    try:
        connections = process.net_connections(kind="tcp")
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return None
    return sum(
        1
        for conn in connections
        if conn.status == psutil.CONN_ESTABLISHED and conn.laddr.port == port
    )


def read_tcp_counters() -> dict[str, int]:
    """Return the kernel's listen-queue counters (Linux; empty elsewhere)."""
    try:
        lines = Path("/proc/net/netstat").read_text().splitlines()
    except OSError:
        return {}
    for names, values in zip(lines[::2], lines[1::2], strict=False):
        if names.startswith("TcpExt:"):
            table = dict(zip(names.split()[1:], values.split()[1:], strict=False))
            wanted = ("ListenOverflows", "ListenDrops", "SyncookiesSent")
            return {name: int(table[name]) for name in wanted if name in table}
    return {}


def read_sysctl(name: str) -> str | None:
    """Return a kernel setting from /proc/sys, or None."""
    try:
        return Path("/proc/sys", *name.split(".")).read_text().strip()
    except OSError:
        return None


def raise_file_limit() -> int:
    """Raise the soft limit of open files to the hard one (children inherit it)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return hard


@dataclass
class CpuSample:
    """CPU seconds of every process the report covers, at one moment."""

    at: float
    web: float | None
    publisher: float | None
    redis: float | None
    clients: list[float | None]
