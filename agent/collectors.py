"""Turn psutil readings into plain, JSON-safe dicts of host metrics.

Every figure that is a percentage or a rate is computed here from the difference
between two cumulative counter readings. The collector keeps the previous readings
itself instead of relying on ``psutil.cpu_percent``, whose baseline psutil 7 keeps per
thread: the publisher calls us from worker threads, where that would read 0.0.

This module knows psutil and nothing else; it must not import Django.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from types import ModuleType
from typing import Any, Final

import psutil

# Linux already counts guest time inside user/nice; adding these would count it twice.
_UNCOUNTED_CPU_FIELDS: Final = frozenset({"guest", "guest_nice"})
# Time the CPU was not doing work; iowait only exists on some platforms.
_IDLE_CPU_FIELDS: Final = frozenset({"idle", "iowait"})

# How platforms say "this information does not exist here". Anything else is a bug we
# want to see, so it is not swallowed.
_UNAVAILABLE_ERRORS: Final = (OSError, RuntimeError, NotImplementedError)

# (output key, psutil counter field, decimal places)
_RateSpec = tuple[tuple[str, str, int], ...]
_NETWORK_RATES: Final[_RateSpec] = (
    ("bytes_sent_per_sec", "bytes_sent", 1),
    ("bytes_recv_per_sec", "bytes_recv", 1),
)
_DISK_RATES: Final[_RateSpec] = (
    ("read_bytes_per_sec", "read_bytes", 1),
    ("write_bytes_per_sec", "write_bytes", 1),
    ("read_ops_per_sec", "read_count", 2),
    ("write_ops_per_sec", "write_count", 2),
)

Counters = Mapping[str, float]


@dataclass(frozen=True, slots=True)
class CpuReading:
    """Cumulative CPU times for the whole machine and for each logical CPU."""

    total: Counters
    per_core: tuple[Counters, ...]


@dataclass(frozen=True, slots=True)
class CounterReading:
    """Cumulative per-device counters, an optional machine total, and when read."""

    time: float
    devices: Mapping[str, Counters]
    total: Counters | None = None


# --- pure arithmetic -------------------------------------------------------------


def counter_delta(previous: float, current: float) -> float:
    """Return how far a cumulative counter advanced, never less than zero."""
    # Counters go backwards after a reset, interface re-creation, CPU hotplug or
    # suspend; that interval is reported as no progress rather than a negative figure.
    return max(current - previous, 0)


def counter_deltas(
    previous: Counters | None, current: Counters, fields: Iterable[str]
) -> dict[str, float]:
    """Return each field's advance since the previous counters (all 0 without one)."""
    if previous is None:
        return dict.fromkeys(fields, 0)
    return {
        field: counter_delta(previous.get(field, current[field]), current[field])
        for field in fields
    }


def per_second(amount: float, elapsed: float, ndigits: int = 1) -> float:
    """Return amount divided by elapsed seconds, or 0.0 when no time passed."""
    if elapsed <= 0:
        return 0.0
    return round(float(amount) / elapsed, ndigits)


def cpu_percentages(previous: Counters, current: Counters) -> dict[str, float]:
    """Return usage, user, system and idle percentages of the CPU time in between."""
    counted = [name for name in current if name not in _UNCOUNTED_CPU_FIELDS]
    deltas = counter_deltas(previous, current, counted)
    total = sum(deltas.values())
    if total <= 0:
        # Two readings with no CPU time between them: nothing ran, so nothing was busy.
        return {"usage_percent": 0.0, "user": 0.0, "system": 0.0, "idle": 100.0}
    # Summing the busy fields (rather than total - idle - iowait) cannot dip below zero
    # through float rounding and report -0.0.
    busy = sum(v for name, v in deltas.items() if name not in _IDLE_CPU_FIELDS)
    return {
        "usage_percent": _percent(busy, total),
        "user": _percent(deltas.get("user", 0), total),
        "system": _percent(deltas.get("system", 0), total),
        "idle": _percent(deltas.get("idle", 0), total),
    }


def device_rates(
    previous: CounterReading, current: CounterReading, spec: _RateSpec
) -> tuple[dict[str, dict[str, float]], dict[str, float]]:
    """Return per-device rates and the rates of their summed deltas."""
    elapsed = current.time - previous.time
    fields = [field for _, field, _ in spec]
    # A device without a baseline (just appeared) gets zero deltas; a device that
    # vanished is simply not in `current`, so it drops out of output and baseline.
    deltas = {
        name: counter_deltas(previous.devices.get(name), counters, fields)
        for name, counters in current.devices.items()
    }
    per_device = {name: _rates(d, elapsed, spec) for name, d in deltas.items()}
    summed = {field: sum(d[field] for d in deltas.values()) for field in fields}
    return per_device, _rates(summed, elapsed, spec)


# --- readings ----------------------------------------------------------------------


def read_cpu(ps: ModuleType) -> CpuReading:
    """Read cumulative CPU times, total and per logical CPU."""
    return CpuReading(
        total=_as_counters(ps.cpu_times()),
        per_core=tuple(_as_counters(t) for t in ps.cpu_times(percpu=True)),
    )


def read_network(ps: ModuleType, now: float) -> CounterReading:
    """Read cumulative per-interface network counters."""
    pernic = _call_or_none(ps, "net_io_counters", pernic=True) or {}
    return CounterReading(
        time=now, devices={name: _as_counters(c) for name, c in pernic.items()}
    )


def read_disk(ps: ModuleType, now: float) -> CounterReading:
    """Read cumulative per-disk I/O counters and psutil's machine-wide total."""
    perdisk = _call_or_none(ps, "disk_io_counters", perdisk=True) or {}
    total = _call_or_none(ps, "disk_io_counters", perdisk=False) if perdisk else None
    return CounterReading(
        time=now,
        devices={name: _as_counters(c) for name, c in perdisk.items()},
        total=_as_counters(total) if total else None,
    )


# --- one function per source ------------------------------------------------------


def collect_cpu(
    ps: ModuleType, previous: CpuReading
) -> tuple[dict[str, Any], CpuReading]:
    """Return CPU figures since the previous reading, and the new reading."""
    current = read_cpu(ps)
    core_baseline = previous.per_core
    if len(core_baseline) != len(current.per_core):
        # CPUs came or went: old per-core counters no longer line up with new ones, so
        # this reading becomes the baseline and each core reports a zero-time interval.
        core_baseline = current.per_core
    figures = cpu_percentages(previous.total, current.total)
    per_core = [
        cpu_percentages(before, now)["usage_percent"]
        for before, now in zip(core_baseline, current.per_core, strict=True)
    ]
    cpu = {
        "usage_percent": figures["usage_percent"],
        "per_core": per_core,
        "user": figures["user"],
        "system": figures["system"],
        "idle": figures["idle"],
        "frequency_mhz": _cpu_frequencies(ps),
        "load_avg": _load_average(ps),
    }
    return cpu, current


def collect_memory(ps: ModuleType) -> dict[str, Any]:
    """Return RAM and swap usage."""
    vm = ps.virtual_memory()
    try:
        swap_percent = _round(ps.swap_memory().percent, 1)
    except Exception:
        # Swap is secondary and containers break it in varied ways (missing /proc
        # files, psutil's RuntimeWarning raised as an error); it must not cost us RAM.
        swap_percent = 0.0
    return {
        "usage_percent": _round(vm.percent, 1),
        "total_bytes": int(vm.total),
        "used_bytes": int(vm.used),
        "available_bytes": int(vm.available),
        "swap_percent": swap_percent,
    }


def collect_network(
    ps: ModuleType, previous: CounterReading, now: float
) -> tuple[dict[str, Any], CounterReading]:
    """Return network throughput since the previous reading, and the new reading."""
    current = read_network(ps, now)
    interfaces, totals = device_rates(previous, current, _NETWORK_RATES)
    return {**totals, "interfaces": interfaces}, current


def collect_disk(
    ps: ModuleType, previous: CounterReading, now: float
) -> tuple[dict[str, Any], CounterReading]:
    """Return partition usage and disk I/O since the last reading, and the new one."""
    current = read_disk(ps, now)
    io: dict[str, Any] = {}
    if current.devices:
        devices, _ = device_rates(previous, current, _DISK_RATES)
        # Totals come from psutil's own sum, which skips partitions; summing our
        # per-device figures would count sda and sda1 twice.
        _, totals = device_rates(
            _total_only(previous), _total_only(current), _DISK_RATES
        )
        io = {**totals, "devices": devices}
    return {"partitions": _partitions(ps), "io": io}, current


class HostCollector:
    """Collects CPU, memory, network and disk figures, keeping baselines for rates."""

    def __init__(
        self, ps: ModuleType = psutil, clock: Callable[[], float] = time.monotonic
    ) -> None:
        """Read every baseline now, so the first collect() covers the time since."""
        self._ps = ps
        self._clock = clock
        # The publisher may call collect() from more than one worker thread; the
        # read-compare-replace of the baselines must not interleave.
        self._lock = threading.Lock()
        self.prime()

    def prime(self) -> None:
        """Take new baselines, so the next collect() covers only the time from now."""
        with self._lock:
            now = self._clock()
            self._cpu = read_cpu(self._ps)
            self._network = read_network(self._ps, now)
            self._disk = read_disk(self._ps, now)

    def collect(self) -> dict[str, Any]:
        """Return all figures since the previous call (or construction)."""
        with self._lock:
            # One clock reading for both so their rates cover the same interval.
            now = self._clock()
            cpu, self._cpu = collect_cpu(self._ps, self._cpu)
            network, self._network = collect_network(self._ps, self._network, now)
            disk, self._disk = collect_disk(self._ps, self._disk, now)
        return {
            "cpu": cpu,
            "memory": collect_memory(self._ps),
            "network": network,
            "disk": disk,
        }


# --- helpers -------------------------------------------------------------------------


def _round(value: float, ndigits: int) -> float:
    # float() first: round() of an int returns an int, and psutil fields may be ints.
    return round(float(value), ndigits)


def _percent(part: float, whole: float) -> float:
    return _round(part / whole * 100, 1)


def _rates(deltas: Counters, elapsed: float, spec: _RateSpec) -> dict[str, float]:
    return {key: per_second(deltas[field], elapsed, nd) for key, field, nd in spec}


def _as_counters(values: Any) -> dict[str, float]:
    # psutil returns namedtuples; plain dicts keep the arithmetic independent of them.
    return dict(values._asdict())


def _call_or_none(ps: ModuleType, name: str, **kwargs: Any) -> Any:
    # Treats "not on this platform" (missing function or a platform error) as None.
    function = getattr(ps, name, None)
    if function is None:
        return None
    try:
        return function(**kwargs)
    except _UNAVAILABLE_ERRORS:
        return None


def _total_only(reading: CounterReading) -> CounterReading:
    devices = {"total": reading.total} if reading.total is not None else {}
    return CounterReading(time=reading.time, devices=devices)


def _cpu_frequencies(ps: ModuleType) -> list[float | None] | None:
    frequencies = _call_or_none(ps, "cpu_freq", percpu=True)
    if not frequencies:
        return None
    # Some kernels report 0 MHz for a CPU whose frequency they cannot read; that is
    # unknown, not stopped.
    return [
        _round(f.current, 1) if f.current is not None and f.current > 0 else None
        for f in frequencies
    ]


def _load_average(ps: ModuleType) -> list[float] | None:
    load = _call_or_none(ps, "getloadavg")
    if load is None:
        return None
    return [_round(value, 2) for value in load]


def _partitions(ps: ModuleType) -> dict[str, dict[str, Any]]:
    partitions: dict[str, dict[str, Any]] = {}
    for part in _call_or_none(ps, "disk_partitions", all=False) or []:
        if part.mountpoint in partitions:
            # Bind mounts can list a mountpoint again; the first entry is the real one.
            continue
        try:
            usage = ps.disk_usage(part.mountpoint)
        except OSError:
            # Covers PermissionError: one unreadable mount must not hide the others.
            continue
        partitions[part.mountpoint] = {
            "device": str(part.device),
            "fstype": str(part.fstype),
            "total_bytes": int(usage.total),
            "used_bytes": int(usage.used),
            "free_bytes": int(usage.free),
            "usage_percent": _round(usage.percent, 1),
        }
    return partitions
