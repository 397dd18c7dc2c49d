"""Turn psutil readings into plain, JSON-safe dicts of host metrics.

Every figure that is a percentage or a rate is computed here from the difference
between two cumulative counter readings. The collector keeps the previous readings
itself instead of relying on ``psutil.cpu_percent``, whose baseline psutil 7 keeps per
thread: the publisher calls us from worker threads, where that would read 0.0.

A figure that was not measured is None (null in JSON), never 0: a rate with no time
between its readings, a device without a baseline, CPU percentages with no CPU time
counted in between. Which interfaces and disks count is agent.devices' to say.

This module knows psutil and nothing else; it must not import Django.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from types import ModuleType
from typing import Any, Final

import psutil

from agent.devices import (
    DEFAULT_DISK_EXCLUDE,
    DEFAULT_NET_EXCLUDE,
    excluded,
    is_whole_disk,
)

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

_CPU_FIGURES: Final = ("usage_percent", "user", "system", "idle")

Counters = Mapping[str, float]
# A rate or a percentage, or None where it was not measured.
Figure = float | None


@dataclass(frozen=True, slots=True)
class CpuReading:
    """Cumulative CPU times for the whole machine and for each logical CPU."""

    total: Counters
    per_core: tuple[Counters, ...]


@dataclass(frozen=True, slots=True)
class CounterReading:
    """Cumulative per-device counters, and when they were read."""

    time: float
    devices: Mapping[str, Counters]


# --- pure arithmetic -------------------------------------------------------------


def counter_delta(previous: float, current: float) -> float:
    """Return how far a cumulative counter advanced, never less than zero."""
    # Counters go backwards after a reset, interface re-creation, CPU hotplug or
    # suspend; that interval is reported as no progress rather than a negative figure.
    return max(current - previous, 0)


def counter_deltas(
    previous: Counters | None, current: Counters, fields: Iterable[str]
) -> dict[str, float] | None:
    """Return each field's advance since the previous counters; None without them."""
    if previous is None:
        return None
    return {
        field: counter_delta(previous.get(field, current[field]), current[field])
        for field in fields
    }


def per_second(amount: float, elapsed: float, ndigits: int = 1) -> Figure:
    """Return amount divided by elapsed seconds, or None when no time passed."""
    if elapsed <= 0:
        return None
    return round(float(amount) / elapsed, ndigits)


def cpu_percentages(previous: Counters, current: Counters) -> dict[str, Figure]:
    """Return usage, user, system and idle percentages of the CPU time in between."""
    counted = [name for name in current if name not in _UNCOUNTED_CPU_FIELDS]
    deltas = counter_deltas(previous, current, counted)
    total = sum(deltas.values())
    if total <= 0:
        # No CPU time was counted between the readings (they came too close, or the
        # counters went backwards): nothing was measured, which is not "idle".
        return dict.fromkeys(_CPU_FIGURES, None)
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
    previous: CounterReading,
    current: CounterReading,
    spec: _RateSpec,
    counted: Callable[[str], bool] = lambda name: True,
) -> tuple[dict[str, dict[str, Figure]], dict[str, Figure]]:
    """Return per-device rates, and the rates of the summed deltas of the devices
    `counted` (None if none of those was measured)."""
    elapsed = current.time - previous.time
    fields = [field for _, field, _ in spec]
    unmeasured = {key: None for key, _, _ in spec}
    per_device: dict[str, dict[str, Figure]] = {}
    summed = dict.fromkeys(fields, 0.0)
    measured = False
    # A device without a baseline (just appeared) has no rates yet; a device that
    # vanished is simply not in `current`, so it drops out of output and baseline.
    for name, counters in current.devices.items():
        deltas = counter_deltas(previous.devices.get(name), counters, fields)
        if deltas is None:
            per_device[name] = dict(unmeasured)
            continue
        per_device[name] = _rates(deltas, elapsed, spec)
        if counted(name):
            measured = True
            for field in fields:
                summed[field] += deltas[field]
    totals = _rates(summed, elapsed, spec) if measured else unmeasured
    return per_device, totals


# --- readings ----------------------------------------------------------------------


def read_cpu(ps: ModuleType) -> CpuReading:
    """Read cumulative CPU times, total and per logical CPU."""
    return CpuReading(
        total=_as_counters(ps.cpu_times()),
        per_core=tuple(_as_counters(t) for t in ps.cpu_times(percpu=True)),
    )


def read_network(
    ps: ModuleType, now: float, exclude: Sequence[str] = ()
) -> CounterReading:
    """Read cumulative per-interface network counters, but the excluded ones'."""
    pernic = _call_or_none(ps, "net_io_counters", pernic=True) or {}
    return CounterReading(time=now, devices=_included(pernic, exclude))


def read_disk(
    ps: ModuleType, now: float, exclude: Sequence[str] = ()
) -> CounterReading:
    """Read cumulative per-disk I/O counters, but the excluded devices'."""
    perdisk = _call_or_none(ps, "disk_io_counters", perdisk=True) or {}
    return CounterReading(time=now, devices=_included(perdisk, exclude))


# --- one function per source ------------------------------------------------------


def collect_cpu(
    ps: ModuleType, previous: CpuReading
) -> tuple[dict[str, Any], CpuReading]:
    """Return CPU figures since the previous reading, and the new reading."""
    current = read_cpu(ps)
    figures = cpu_percentages(previous.total, current.total)
    if len(previous.per_core) == len(current.per_core):
        per_core = [
            cpu_percentages(before, now)["usage_percent"]
            for before, now in zip(previous.per_core, current.per_core, strict=True)
        ]
    else:
        # CPUs came or went: old per-core counters no longer line up with new ones,
        # so no core was measured this time; this reading is the next baseline.
        per_core = [None] * len(current.per_core)
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
    ps: ModuleType, previous: CounterReading, now: float, exclude: Sequence[str] = ()
) -> tuple[dict[str, Any], CounterReading]:
    """Return network throughput since the previous reading, and the new reading;
    the totals are the sums of the interfaces listed."""
    current = read_network(ps, now, exclude)
    interfaces, totals = device_rates(previous, current, _NETWORK_RATES)
    return {**totals, "interfaces": interfaces}, current


def collect_disk(
    ps: ModuleType,
    previous: CounterReading,
    now: float,
    exclude: Sequence[str] = (),
    whole_disk: Callable[[str], bool] = is_whole_disk,
) -> tuple[dict[str, Any], CounterReading]:
    """Return partition usage and disk I/O since the last reading, and the new one;
    the totals are the sums of the whole disks listed."""
    current = read_disk(ps, now, exclude)
    io: dict[str, Any] = {}
    if current.devices:
        # Summing every device listed would count sda and sda1 (or a volume and the
        # disk under it) twice.
        devices, totals = device_rates(previous, current, _DISK_RATES, whole_disk)
        io = {**totals, "devices": devices}
    return {"partitions": _partitions(ps), "io": io}, current


class HostCollector:
    """Collects CPU, memory, network and disk figures, keeping baselines for rates.

    Interfaces and disks whose names match `net_exclude` or `disk_exclude` (globs)
    are left out; `whole_disk` says which disks count towards the disk totals.
    """

    def __init__(
        self,
        ps: ModuleType = psutil,
        clock: Callable[[], float] = time.monotonic,
        net_exclude: Iterable[str] = DEFAULT_NET_EXCLUDE,
        disk_exclude: Iterable[str] = DEFAULT_DISK_EXCLUDE,
        whole_disk: Callable[[str], bool] = is_whole_disk,
    ) -> None:
        """Read every baseline now, so the first collect() covers the time since."""
        self._ps = ps
        self._clock = clock
        self._net_exclude = tuple(net_exclude)
        self._disk_exclude = tuple(disk_exclude)
        self._whole_disk = whole_disk
        # The publisher may call collect() from more than one worker thread; the
        # read-compare-replace of the baselines must not interleave.
        self._lock = threading.Lock()
        self.prime()

    def prime(self) -> None:
        """Take new baselines, so the next collect() covers only the time from now."""
        with self._lock:
            now = self._clock()
            self._cpu = read_cpu(self._ps)
            self._network = read_network(self._ps, now, self._net_exclude)
            self._disk = read_disk(self._ps, now, self._disk_exclude)

    def collect(self) -> dict[str, Any]:
        """Return all figures since the previous call (or construction)."""
        with self._lock:
            # One clock reading for both so their rates cover the same interval.
            now = self._clock()
            cpu, self._cpu = collect_cpu(self._ps, self._cpu)
            network, self._network = collect_network(
                self._ps, self._network, now, self._net_exclude
            )
            disk, self._disk = collect_disk(
                self._ps, self._disk, now, self._disk_exclude, self._whole_disk
            )
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


def _rates(deltas: Counters, elapsed: float, spec: _RateSpec) -> dict[str, Figure]:
    return {key: per_second(deltas[field], elapsed, nd) for key, field, nd in spec}


def _included(counters: Mapping[str, Any], exclude: Sequence[str]) -> dict:
    # Excluded devices are never read into a baseline, so they appear nowhere.
    return {
        name: _as_counters(values)
        for name, values in counters.items()
        if not excluded(name, exclude)
    }


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
