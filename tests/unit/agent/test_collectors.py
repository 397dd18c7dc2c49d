"""Unit tests for agent.collectors, with psutil and the clock replaced by fakes."""

from __future__ import annotations

import json
import math
from collections import namedtuple
from collections.abc import Callable
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any

import psutil
import pytest

from agent import devices
from agent.collectors import (
    HostCollector,
    collect_cpu,
    collect_disk,
    collect_memory,
    collect_network,
    cpu_percentages,
    per_second,
    read_cpu,
    read_disk,
    read_network,
)

# Our own namedtuples with psutil's Linux field names: psutil 7.2 moved its own into a
# private module, and the collectors only rely on the field names.
CpuTimes = namedtuple(
    "CpuTimes",
    "user nice system idle iowait irq softirq steal guest guest_nice",
    defaults=(0.0,) * 10,
)
CpuFreq = namedtuple("CpuFreq", "current min max")
VirtualMemory = namedtuple("VirtualMemory", "total available percent used free")
SwapMemory = namedtuple("SwapMemory", "total used free percent sin sout")
NetIO = namedtuple(
    "NetIO",
    "bytes_sent bytes_recv packets_sent packets_recv errin errout dropin dropout",
    defaults=(0,) * 6,
)
DiskIO = namedtuple(
    "DiskIO",
    "read_count write_count read_bytes write_bytes read_time write_time",
    defaults=(0, 0),
)
DiskPartition = namedtuple("DiskPartition", "device mountpoint fstype opts")
DiskUsage = namedtuple("DiskUsage", "total used free percent")


def cpu(**deltas: float) -> CpuTimes:
    """CPU times with the given fields set and the rest zero."""
    return CpuTimes(**deltas)


def disk_io(
    read_bytes: int, write_bytes: int, read_count: int, write_count: int
) -> DiskIO:
    return DiskIO(
        read_count=read_count,
        write_count=write_count,
        read_bytes=read_bytes,
        write_bytes=write_bytes,
    )


def raiser(error: BaseException) -> Callable[..., Any]:
    def raise_it(*args: Any, **kwargs: Any) -> Any:
        raise error

    return raise_it


@dataclass
class FakeHost:
    """Mutable host state; module() exposes it through a psutil-like module."""

    cpu_total: CpuTimes = field(default_factory=lambda: cpu(user=100.0, idle=900.0))
    cpu_cores: list[CpuTimes] = field(
        default_factory=lambda: [cpu(user=50.0, idle=450.0)] * 2
    )
    freq: list[CpuFreq] | None = field(
        default_factory=lambda: [CpuFreq(2600.0, 800.0, 3000.0)] * 2
    )
    loadavg: tuple[float, float, float] = (0.5, 0.25, 0.125)
    memory: VirtualMemory = field(
        default_factory=lambda: VirtualMemory(16_000, 12_000, 25.0, 4_000, 10_000)
    )
    swap: SwapMemory = field(
        default_factory=lambda: SwapMemory(2_000, 500, 1_500, 25.0, 0, 0)
    )
    nics: dict[str, NetIO] | None = field(
        default_factory=lambda: {"eth0": NetIO(1_000, 2_000)}
    )
    disks: dict[str, DiskIO] | None = field(
        default_factory=lambda: {"sda": disk_io(0, 0, 0, 0)}
    )
    # What /sys/block would say: the whole disks (the rest are partitions).
    whole_disks: set[str] = field(default_factory=lambda: {"sda", "sdb", "sdc"})
    partitions: list[DiskPartition] = field(
        default_factory=lambda: [DiskPartition("/dev/sda1", "/", "ext4", "rw")]
    )
    usages: dict[str, DiskUsage | BaseException] = field(
        default_factory=lambda: {"/": DiskUsage(100, 40, 60, 40.0)}
    )

    def module(self) -> ModuleType:
        ps = ModuleType("fake_psutil")
        ps.cpu_times = lambda percpu=False: (
            list(self.cpu_cores) if percpu else self.cpu_total
        )
        ps.cpu_freq = lambda percpu=False: self.freq
        ps.getloadavg = lambda: self.loadavg
        ps.virtual_memory = lambda: self.memory
        ps.swap_memory = lambda: self.swap
        ps.net_io_counters = lambda pernic=False: self.nics
        ps.disk_io_counters = lambda perdisk=False: self.disks if perdisk else None
        ps.disk_partitions = lambda all=False: list(self.partitions)
        ps.disk_usage = self._disk_usage
        return ps

    def is_whole_disk(self, name: str) -> bool:
        return name in self.whole_disks

    def _disk_usage(self, path: str) -> DiskUsage:
        usage = self.usages[path]
        if isinstance(usage, BaseException):
            raise usage
        return usage


class FakeClock:
    """A monotonic clock that only moves when told to."""

    def __init__(self) -> None:
        self.now = 1_000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def host() -> FakeHost:
    return FakeHost()


def collector_for(
    host: FakeHost, clock: FakeClock, ps: ModuleType | None = None, **options: Any
) -> HostCollector:
    """A collector of the fake host, with the default exclusions unless given."""
    ps = ps or host.module()
    return HostCollector(ps, clock, whole_disk=host.is_whole_disk, **options)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


def assert_json_safe(value: Any, path: str = "$") -> None:
    """Fail unless value is built only from dict/list/str/int/float/bool/None."""
    if isinstance(value, dict):
        for key, item in value.items():
            assert type(key) is str, f"{path} has key {key!r}"
            assert_json_safe(item, f"{path}.{key}")
    elif isinstance(value, list):
        for index, item in enumerate(value):
            assert_json_safe(item, f"{path}[{index}]")
    else:
        assert value is None or type(value) in {str, int, float, bool}, (
            f"{path} is {type(value).__name__}"
        )
        if type(value) is float:
            assert math.isfinite(value), f"{path} is {value}"


# --- CPU ---------------------------------------------------------------------------


def test_cpu_percentages_come_from_deltas_and_exclude_guest_time(
    host: FakeHost, clock: FakeClock
) -> None:
    host.cpu_total = cpu(user=1_000.0, idle=5_000.0, guest=300.0)
    collector = collector_for(host, clock)
    # 100 s of counted time: user 30, nice 5, system 10, idle 40, iowait 10, irq 2,
    # softirq 1, steal 2. Guest time (25 s) is already inside user/nice on Linux.
    host.cpu_total = cpu(
        user=1_030.0,
        nice=5.0,
        system=10.0,
        idle=5_040.0,
        iowait=10.0,
        irq=2.0,
        softirq=1.0,
        steal=2.0,
        guest=320.0,
        guest_nice=5.0,
    )

    result = collector.collect()["cpu"]

    assert result["usage_percent"] == 50.0  # 100 - idle 40 - iowait 10
    assert result["user"] == 30.0
    assert result["system"] == 10.0
    assert result["idle"] == 40.0


def test_cpu_percentages_are_rounded_to_one_decimal() -> None:
    before = cpu()._asdict()
    after = cpu(user=1.0, idle=2.0)._asdict()

    assert cpu_percentages(before, after) == {
        "usage_percent": 33.3,
        "user": 33.3,
        "system": 0.0,
        "idle": 66.7,
    }


def test_first_collect_after_construction_reports_usage_since_construction(
    host: FakeHost, clock: FakeClock
) -> None:
    collector = collector_for(host, clock)
    host.cpu_total = cpu(user=130.0, idle=990.0)  # 30 busy out of 120
    host.cpu_cores = [cpu(user=65.0, idle=495.0), cpu(user=65.0, idle=495.0)]

    result = collector.collect()["cpu"]

    assert result["usage_percent"] == 25.0
    assert result["per_core"] == [25.0, 25.0]


def test_cpu_with_no_time_between_readings_reports_null_not_idle(
    host: FakeHost, clock: FakeClock
) -> None:
    collector = collector_for(host, clock)

    result = collector.collect()["cpu"]

    assert result["usage_percent"] is None
    assert result["user"] is None
    assert result["system"] is None
    assert result["idle"] is None
    assert result["per_core"] == [None, None]


def test_cpu_counter_going_backwards_counts_as_no_time(
    host: FakeHost, clock: FakeClock
) -> None:
    collector = collector_for(host, clock)
    # idle fell from 900 to 100 (e.g. after suspend); only user's +10 s is counted.
    host.cpu_total = cpu(user=110.0, idle=100.0)

    result = collector.collect()["cpu"]

    assert result["usage_percent"] == 100.0
    assert result["user"] == 100.0
    assert result["idle"] == 0.0


def test_per_core_usage_comes_from_each_cores_own_deltas(
    host: FakeHost, clock: FakeClock
) -> None:
    host.cpu_cores = [cpu(user=10.0, idle=10.0), cpu(system=10.0, idle=10.0)]
    collector = collector_for(host, clock)
    host.cpu_cores = [cpu(user=85.0, idle=35.0), cpu(system=30.0, idle=90.0)]

    assert collector.collect()["cpu"]["per_core"] == [75.0, 20.0]


@pytest.mark.parametrize(("cores_before", "cores_after"), [(2, 4), (4, 2)])
def test_per_core_usage_is_null_once_when_cpu_count_changes(
    host: FakeHost, clock: FakeClock, cores_before: int, cores_after: int
) -> None:
    host.cpu_cores = [cpu(user=10.0, idle=10.0)] * cores_before
    collector = collector_for(host, clock)
    host.cpu_cores = [cpu(user=20.0, idle=20.0)] * cores_after

    changed = collector.collect()["cpu"]["per_core"]
    host.cpu_cores = [cpu(user=23.0, idle=21.0)] * cores_after
    settled = collector.collect()["cpu"]["per_core"]

    assert changed == [None] * cores_after
    assert settled == [75.0] * cores_after


def test_cpu_frequency_is_per_cpu_mhz_with_zero_reported_as_unknown(
    host: FakeHost, clock: FakeClock
) -> None:
    host.freq = [
        CpuFreq(2600.04, 800.0, 3000.0),
        CpuFreq(0.0, 0.0, 0.0),
        CpuFreq(1199.96, 800.0, 3000.0),
    ]
    collector = collector_for(host, clock)

    assert collector.collect()["cpu"]["frequency_mhz"] == [2600.0, None, 1200.0]


@pytest.mark.parametrize(
    "make_unavailable",
    [
        pytest.param(lambda ps: delattr(ps, "cpu_freq"), id="missing"),
        pytest.param(
            lambda ps: setattr(ps, "cpu_freq", lambda percpu: None), id="none"
        ),
        pytest.param(lambda ps: setattr(ps, "cpu_freq", lambda percpu: []), id="empty"),
        pytest.param(
            lambda ps: setattr(ps, "cpu_freq", raiser(NotImplementedError())),
            id="not-implemented",
        ),
        pytest.param(
            lambda ps: setattr(ps, "cpu_freq", raiser(OSError())), id="os-error"
        ),
        pytest.param(
            lambda ps: setattr(ps, "cpu_freq", raiser(FileNotFoundError())),
            id="file-not-found",
        ),
    ],
)
def test_cpu_frequency_is_none_when_platform_has_no_frequency_info(
    host: FakeHost, clock: FakeClock, make_unavailable: Callable[[ModuleType], None]
) -> None:
    ps = host.module()
    make_unavailable(ps)
    collector = collector_for(host, clock, ps)

    assert collector.collect()["cpu"]["frequency_mhz"] is None


def test_load_average_is_a_list_rounded_to_two_decimals(
    host: FakeHost, clock: FakeClock
) -> None:
    host.loadavg = (0.123, 1.456, 2.0)
    collector = collector_for(host, clock)

    assert collector.collect()["cpu"]["load_avg"] == [0.12, 1.46, 2.0]


@pytest.mark.parametrize(
    "make_unavailable",
    [
        pytest.param(lambda ps: delattr(ps, "getloadavg"), id="missing"),
        pytest.param(
            lambda ps: setattr(ps, "getloadavg", raiser(OSError())), id="os-error"
        ),
    ],
)
def test_load_average_is_none_when_unavailable(
    host: FakeHost, clock: FakeClock, make_unavailable: Callable[[ModuleType], None]
) -> None:
    ps = host.module()
    make_unavailable(ps)

    assert collector_for(host, clock, ps).collect()["cpu"]["load_avg"] is None


def test_collect_cpu_returns_the_new_reading_as_next_baseline(host: FakeHost) -> None:
    ps = host.module()
    first = read_cpu(ps)
    host.cpu_total = cpu(user=110.0, idle=910.0)
    _, second = collect_cpu(ps, first)
    host.cpu_total = cpu(user=110.0, idle=920.0)

    figures, _ = collect_cpu(ps, second)

    assert figures["usage_percent"] == 0.0
    assert figures["idle"] == 100.0


# --- memory ------------------------------------------------------------------------


def test_memory_reports_virtual_memory_and_swap_figures(host: FakeHost) -> None:
    host.memory = VirtualMemory(
        total=8_000_000_000,
        available=6_000_000_000,
        percent=25.04,
        used=1_500_000_000,
        free=5_000_000_000,
    )
    host.swap = SwapMemory(total=1_000, used=125, free=875, percent=12.5, sin=0, sout=0)

    assert collect_memory(host.module()) == {
        "usage_percent": 25.0,
        "total_bytes": 8_000_000_000,
        "used_bytes": 1_500_000_000,
        "available_bytes": 6_000_000_000,
        "swap_percent": 12.5,
    }


@pytest.mark.parametrize("error", [OSError(), RuntimeError(), RuntimeWarning()])
def test_swap_percent_is_zero_when_swap_memory_raises(
    host: FakeHost, error: Exception
) -> None:
    ps = host.module()
    ps.swap_memory = raiser(error)

    memory = collect_memory(ps)

    assert memory["swap_percent"] == 0.0
    assert memory["usage_percent"] == 25.0


# --- network -----------------------------------------------------------------------


def test_network_rates_are_bytes_per_second_over_clock_elapsed(
    host: FakeHost, clock: FakeClock
) -> None:
    host.nics = {"eth0": NetIO(1_000, 500), "wlan0": NetIO(100, 100)}
    collector = collector_for(host, clock)
    host.nics = {"eth0": NetIO(3_001, 10_500), "wlan0": NetIO(400, 400)}
    clock.advance(2.0)

    network = collector.collect()["network"]

    assert network == {
        "bytes_sent_per_sec": 1_150.5,  # (2001 + 300) / 2
        "bytes_recv_per_sec": 5_150.0,  # (10000 + 300) / 2
        "interfaces": {
            "eth0": {"bytes_sent_per_sec": 1_000.5, "bytes_recv_per_sec": 5_000.0},
            "wlan0": {"bytes_sent_per_sec": 150.0, "bytes_recv_per_sec": 150.0},
        },
    }


def test_network_rate_never_negative_after_counter_reset(
    host: FakeHost, clock: FakeClock
) -> None:
    host.nics = {"eth0": NetIO(50_000, 1_000), "eth1": NetIO(0, 0)}
    collector = collector_for(host, clock)
    # eth0's sent counter was reset; its received counter kept going.
    host.nics = {"eth0": NetIO(100, 5_000), "eth1": NetIO(400, 0)}
    clock.advance(4.0)

    network = collector.collect()["network"]

    assert network["interfaces"]["eth0"] == {
        "bytes_sent_per_sec": 0.0,
        "bytes_recv_per_sec": 1_000.0,
    }
    assert network["bytes_sent_per_sec"] == 100.0  # eth1 only
    assert network["bytes_recv_per_sec"] == 1_000.0


def test_network_interface_that_appears_reports_null_then_real_rates(
    host: FakeHost, clock: FakeClock
) -> None:
    host.nics = {"eth0": NetIO(0, 0)}
    collector = collector_for(host, clock)
    host.nics = {"eth0": NetIO(100, 100), "wlan0": NetIO(9_000, 9_000)}
    clock.advance(1.0)

    appeared = collector.collect()["network"]
    host.nics = {"eth0": NetIO(100, 100), "wlan0": NetIO(9_500, 9_200)}
    clock.advance(1.0)
    settled = collector.collect()["network"]

    assert appeared["interfaces"]["wlan0"] == {
        "bytes_sent_per_sec": None,
        "bytes_recv_per_sec": None,
    }
    assert appeared["bytes_sent_per_sec"] == 100.0  # wlan0's 9000 is not a rate
    assert settled["interfaces"]["wlan0"] == {
        "bytes_sent_per_sec": 500.0,
        "bytes_recv_per_sec": 200.0,
    }


def test_network_interface_that_vanishes_is_dropped_and_loses_its_baseline(
    host: FakeHost, clock: FakeClock
) -> None:
    host.nics = {"eth0": NetIO(0, 0), "eth1": NetIO(1_000, 1_000)}
    collector = collector_for(host, clock)
    host.nics = {"eth0": NetIO(10, 10)}
    clock.advance(1.0)

    vanished = collector.collect()["network"]
    host.nics = {"eth0": NetIO(10, 10), "eth1": NetIO(5_000, 5_000)}
    clock.advance(1.0)
    returned = collector.collect()["network"]

    assert set(vanished["interfaces"]) == {"eth0"}
    assert vanished["bytes_sent_per_sec"] == 10.0
    # Back with no baseline: its 4000 bytes since first seen are not reported as a rate.
    assert returned["interfaces"]["eth1"]["bytes_sent_per_sec"] is None


def test_network_rates_are_null_when_no_time_elapsed(
    host: FakeHost, clock: FakeClock
) -> None:
    host.nics = {"eth0": NetIO(0, 0)}
    collector = collector_for(host, clock)
    host.nics = {"eth0": NetIO(1_000, 1_000)}

    network = collector.collect()["network"]

    assert network == {
        "bytes_sent_per_sec": None,
        "bytes_recv_per_sec": None,
        "interfaces": {
            "eth0": {"bytes_sent_per_sec": None, "bytes_recv_per_sec": None}
        },
    }


@pytest.mark.parametrize("counters", [None, {}])
def test_network_without_counters_reports_no_interfaces_and_null_totals(
    host: FakeHost, clock: FakeClock, counters: dict[str, NetIO] | None
) -> None:
    host.nics = counters
    collector = collector_for(host, clock)
    clock.advance(1.0)

    assert collector.collect()["network"] == {
        "bytes_sent_per_sec": None,
        "bytes_recv_per_sec": None,
        "interfaces": {},
    }


def test_collect_network_rates_cover_the_time_between_readings(
    host: FakeHost,
) -> None:
    host.nics = {"eth0": NetIO(0, 0)}
    ps = host.module()
    previous = read_network(ps, now=10.0)
    host.nics = {"eth0": NetIO(1_000, 1)}

    network, current = collect_network(ps, previous, now=10.5)

    assert network["bytes_sent_per_sec"] == 2_000.0
    assert network["bytes_recv_per_sec"] == 2.0
    assert current.time == 10.5


def test_network_totals_leave_out_loopback_and_virtual_interfaces_by_default(
    host: FakeHost, clock: FakeClock
) -> None:
    virtual = ["lo", "docker0", "veth1a2b", "br-5f3c", "virbr0", "ifb0", "tun0"]
    host.nics = {name: NetIO(0, 0) for name in ["eth0", "wlan0", *virtual]}
    collector = collector_for(host, clock)
    host.nics = {name: NetIO(1_000_000, 1_000_000) for name in virtual}
    host.nics |= {"eth0": NetIO(300, 1_000), "wlan0": NetIO(100, 1_000)}
    clock.advance(1.0)

    network = collector.collect()["network"]

    assert set(network["interfaces"]) == {"eth0", "wlan0"}
    assert network["bytes_sent_per_sec"] == 400.0
    assert network["bytes_recv_per_sec"] == 2_000.0


@pytest.mark.parametrize(
    ("exclude", "listed"),
    [((), {"lo", "eth0", "docker0"}), (("eth*",), {"lo", "docker0"})],
    ids=["nothing-excluded", "own-globs"],
)
def test_network_exclusions_are_the_globs_given(
    host: FakeHost, clock: FakeClock, exclude: tuple[str, ...], listed: set[str]
) -> None:
    host.nics = {"lo": NetIO(0, 0), "eth0": NetIO(0, 0), "docker0": NetIO(0, 0)}
    collector = collector_for(host, clock, net_exclude=exclude)
    host.nics = {name: NetIO(100, 100) for name in host.nics}
    clock.advance(1.0)

    network = collector.collect()["network"]

    assert set(network["interfaces"]) == listed
    assert network["bytes_sent_per_sec"] == 100.0 * len(listed)


# --- disk --------------------------------------------------------------------------


def test_disk_partitions_skip_unreadable_ones_and_keep_first_duplicate(
    host: FakeHost, clock: FakeClock
) -> None:
    host.partitions = [
        DiskPartition("/dev/sda1", "/", "ext4", "rw"),
        DiskPartition("/dev/sda2", "/secret", "ext4", "rw"),
        DiskPartition("/dev/sdb1", "/gone", "xfs", "rw"),
        DiskPartition("/dev/sdc1", "/data", "xfs", "rw"),
        DiskPartition("/dev/sdz9", "/data", "tmpfs", "rw"),
    ]
    host.usages = {
        "/": DiskUsage(1_000, 250, 750, 25.0),
        "/secret": PermissionError(13, "Permission denied"),
        "/gone": OSError(5, "Input/output error"),
        "/data": DiskUsage(3_000, 1_000, 2_000, 33.33),
    }
    collector = collector_for(host, clock)

    assert collector.collect()["disk"]["partitions"] == {
        "/": {
            "device": "/dev/sda1",
            "fstype": "ext4",
            "total_bytes": 1_000,
            "used_bytes": 250,
            "free_bytes": 750,
            "usage_percent": 25.0,
        },
        "/data": {
            "device": "/dev/sdc1",
            "fstype": "xfs",
            "total_bytes": 3_000,
            "used_bytes": 1_000,
            "free_bytes": 2_000,
            "usage_percent": 33.3,
        },
    }


def test_disk_io_totals_count_a_disk_once_not_its_partitions_again(
    host: FakeHost, clock: FakeClock
) -> None:
    host.disks = {"sda": disk_io(0, 0, 0, 0), "sda1": disk_io(0, 0, 0, 0)}
    collector = collector_for(host, clock)
    # sda1 is a partition of sda: its I/O is inside sda's already.
    host.disks = {"sda": disk_io(4_000, 2_000, 3, 7), "sda1": disk_io(4_000, 0, 3, 0)}
    clock.advance(3.0)

    io = collector.collect()["disk"]["io"]

    assert io == {
        "read_bytes_per_sec": 1_333.3,
        "write_bytes_per_sec": 666.7,
        "read_ops_per_sec": 1.0,
        "write_ops_per_sec": 2.33,
        "devices": {
            "sda": {
                "read_bytes_per_sec": 1_333.3,
                "write_bytes_per_sec": 666.7,
                "read_ops_per_sec": 1.0,
                "write_ops_per_sec": 2.33,
            },
            "sda1": {
                "read_bytes_per_sec": 1_333.3,
                "write_bytes_per_sec": 0.0,
                "read_ops_per_sec": 1.0,
                "write_ops_per_sec": 0.0,
            },
        },
    }


def test_disk_totals_count_whole_disks_and_leave_out_loop_ram_and_zram(
    host: FakeHost, clock: FakeClock
) -> None:
    names = ["sda", "sda1", "nvme0n1", "nvme0n1p1", "dm-0", "loop0", "ram0", "zram0"]
    # dm-0 is a volume on sda1: listed, but its I/O is counted on sda already.
    host.whole_disks = {"sda", "nvme0n1"}
    host.disks = {name: disk_io(0, 0, 0, 0) for name in names}
    collector = collector_for(host, clock)
    host.disks = {name: disk_io(1_000, 1_000, 1, 1) for name in names}
    host.disks |= {"sda": disk_io(2_000, 0, 2, 0), "nvme0n1": disk_io(500, 0, 5, 0)}
    clock.advance(1.0)

    io = collector.collect()["disk"]["io"]

    assert set(io["devices"]) == {"sda", "sda1", "nvme0n1", "nvme0n1p1", "dm-0"}
    assert io["read_bytes_per_sec"] == 2_500.0
    assert io["write_bytes_per_sec"] == 0.0
    assert io["read_ops_per_sec"] == 7.0


def test_disk_exclusions_are_the_globs_given(host: FakeHost, clock: FakeClock) -> None:
    host.whole_disks = {"sda", "loop0"}
    host.disks = {"sda": disk_io(0, 0, 0, 0), "loop0": disk_io(0, 0, 0, 0)}
    collector = collector_for(host, clock, disk_exclude=("sd*",))
    host.disks = {"sda": disk_io(100, 0, 1, 0), "loop0": disk_io(700, 0, 7, 0)}
    clock.advance(1.0)

    io = collector.collect()["disk"]["io"]

    assert set(io["devices"]) == {"loop0"}
    assert io["read_bytes_per_sec"] == 700.0


def test_disk_totals_are_null_when_no_whole_disk_is_listed(
    host: FakeHost, clock: FakeClock
) -> None:
    host.whole_disks = set()
    host.disks = {"sda1": disk_io(0, 0, 0, 0)}
    collector = collector_for(host, clock)
    host.disks = {"sda1": disk_io(100, 0, 1, 0)}
    clock.advance(1.0)

    io = collector.collect()["disk"]["io"]

    assert io["read_bytes_per_sec"] is None
    assert io["devices"]["sda1"]["read_bytes_per_sec"] == 100.0


def test_disk_io_rate_never_negative_after_counter_reset(
    host: FakeHost, clock: FakeClock
) -> None:
    host.disks = {"sda": disk_io(10_000, 10_000, 100, 100)}
    collector = collector_for(host, clock)
    host.disks = {"sda": disk_io(0, 10_500, 0, 105)}
    clock.advance(1.0)

    io = collector.collect()["disk"]["io"]

    assert io["read_bytes_per_sec"] == 0.0
    assert io["read_ops_per_sec"] == 0.0
    assert io["write_bytes_per_sec"] == 500.0
    assert io["devices"]["sda"]["read_bytes_per_sec"] == 0.0
    assert io["devices"]["sda"]["write_ops_per_sec"] == 5.0


def test_disk_device_that_appears_reports_null_and_one_that_vanishes_is_dropped(
    host: FakeHost, clock: FakeClock
) -> None:
    host.disks = {"sda": disk_io(0, 0, 0, 0), "sdb": disk_io(0, 0, 0, 0)}
    collector = collector_for(host, clock)
    host.disks = {"sda": disk_io(100, 0, 1, 0), "sdc": disk_io(9_000, 9_000, 9, 9)}
    clock.advance(1.0)

    first = collector.collect()["disk"]["io"]["devices"]
    host.disks = {"sda": disk_io(100, 0, 1, 0), "sdc": disk_io(9_200, 9_000, 11, 9)}
    clock.advance(1.0)
    second = collector.collect()["disk"]["io"]["devices"]

    assert set(first) == {"sda", "sdc"}
    assert first["sdc"] == dict.fromkeys(first["sdc"], None)
    assert first["sda"]["read_bytes_per_sec"] == 100.0
    assert second["sdc"]["read_bytes_per_sec"] == 200.0
    assert second["sdc"]["read_ops_per_sec"] == 2.0


def test_disk_io_rates_are_null_when_no_time_elapsed(
    host: FakeHost, clock: FakeClock
) -> None:
    collector = collector_for(host, clock)
    host.disks = {"sda": disk_io(100, 100, 1, 1)}

    io = collector.collect()["disk"]["io"]

    unmeasured = dict.fromkeys(
        [
            "read_bytes_per_sec",
            "write_bytes_per_sec",
            "read_ops_per_sec",
            "write_ops_per_sec",
        ],
        None,
    )
    assert io == {**unmeasured, "devices": {"sda": unmeasured}}


@pytest.mark.parametrize(
    "make_unavailable",
    [
        pytest.param(
            lambda ps: setattr(ps, "disk_io_counters", lambda perdisk: None), id="none"
        ),
        pytest.param(
            lambda ps: setattr(ps, "disk_io_counters", lambda perdisk: {}),
            id="empty",
        ),
        pytest.param(
            lambda ps: setattr(ps, "disk_io_counters", raiser(RuntimeError())),
            id="runtime-error",
        ),
        pytest.param(
            lambda ps: setattr(ps, "disk_io_counters", raiser(OSError())),
            id="os-error",
        ),
        pytest.param(
            lambda ps: setattr(ps, "disk_io_counters", raiser(NotImplementedError())),
            id="not-implemented",
        ),
        pytest.param(lambda ps: delattr(ps, "disk_io_counters"), id="missing"),
    ],
)
def test_disk_io_is_empty_when_host_has_no_disk_counters(
    host: FakeHost, clock: FakeClock, make_unavailable: Callable[[ModuleType], None]
) -> None:
    ps = host.module()
    make_unavailable(ps)
    collector = collector_for(host, clock, ps)
    clock.advance(1.0)

    disk = collector.collect()["disk"]

    assert disk["io"] == {}
    assert set(disk["partitions"]) == {"/"}


def test_disk_io_is_empty_when_counters_disappear_after_construction(
    host: FakeHost, clock: FakeClock
) -> None:
    ps = host.module()
    collector = collector_for(host, clock, ps)
    ps.disk_io_counters = raiser(OSError())
    clock.advance(1.0)

    assert collector.collect()["disk"]["io"] == {}


def test_collect_disk_returns_the_new_reading_as_next_baseline(
    host: FakeHost,
) -> None:
    ps = host.module()
    first = read_disk(ps, now=0.0)
    host.disks = {"sda": disk_io(1_000, 0, 10, 0)}
    _, second = collect_disk(ps, first, now=1.0, whole_disk=host.is_whole_disk)

    disk, _ = collect_disk(ps, second, now=2.0, whole_disk=host.is_whole_disk)

    assert disk["io"]["read_bytes_per_sec"] == 0.0
    assert disk["io"]["devices"]["sda"]["read_ops_per_sec"] == 0.0


# --- helpers and the whole collector -------------------------------------------


@pytest.mark.parametrize("elapsed", [0.0, -1.0])
def test_per_second_is_null_when_no_time_elapsed(elapsed: float) -> None:
    assert per_second(1_000, elapsed) is None


def test_per_second_rounds_to_requested_places() -> None:
    assert per_second(10, 3.0) == 3.3
    assert per_second(10, 3.0, ndigits=2) == 3.33


def test_collect_returns_the_four_sources_in_json_safe_types(
    host: FakeHost, clock: FakeClock
) -> None:
    collector = collector_for(host, clock)
    host.cpu_total = cpu(user=150, idle=950)
    clock.advance(1.0)

    snapshot = collector.collect()

    assert set(snapshot) == {"cpu", "memory", "network", "disk"}
    assert set(snapshot["cpu"]) == {
        "usage_percent",
        "per_core",
        "user",
        "system",
        "idle",
        "frequency_mhz",
        "load_avg",
    }
    assert_json_safe(snapshot)


def test_host_collector_with_real_psutil_gives_json_serialisable_output() -> None:
    collector = HostCollector()

    snapshot = collector.collect()

    json.dumps(snapshot, allow_nan=False)
    assert_json_safe(snapshot)
    assert len(snapshot["cpu"]["per_core"]) == psutil.cpu_count()
    # Collected at once after the baseline: no CPU time may have been counted yet.
    usage = snapshot["cpu"]["usage_percent"]
    assert usage is None or 0.0 <= usage <= 100.0
    assert "lo" not in snapshot["network"]["interfaces"]
    assert snapshot["memory"]["total_bytes"] > 0


# --- which devices count (agent.devices) -------------------------------------------


def make_block_device(sys_block, name: str, *, under: tuple[str, ...] = ()) -> None:
    (sys_block / name / "slaves").mkdir(parents=True)
    for disk in under:
        (sys_block / name / "slaves" / disk).touch()


def test_whole_disks_are_those_in_sys_block_with_nothing_beneath(tmp_path) -> None:
    make_block_device(tmp_path, "sda")
    make_block_device(tmp_path, "cciss!c0d0")
    make_block_device(tmp_path, "dm-0", under=("sda2",))
    make_block_device(tmp_path, "md0", under=("sdb", "sdc"))

    assert devices.is_whole_disk("sda", tmp_path)
    assert devices.is_whole_disk("cciss/c0d0", tmp_path)
    assert not devices.is_whole_disk("sda1", tmp_path)  # a partition
    assert not devices.is_whole_disk("dm-0", tmp_path)
    assert not devices.is_whole_disk("md0", tmp_path)


def test_every_disk_is_whole_where_there_is_no_sys_block(tmp_path) -> None:
    assert devices.is_whole_disk("disk0", tmp_path / "absent")


def test_exclusion_globs_match_whole_names_case_sensitively() -> None:
    assert devices.excluded("veth9c1", devices.DEFAULT_NET_EXCLUDE)
    assert devices.excluded("lo", devices.DEFAULT_NET_EXCLUDE)
    assert devices.excluded("lo0", devices.DEFAULT_NET_EXCLUDE)
    assert not devices.excluded("eth0", devices.DEFAULT_NET_EXCLUDE)
    assert not devices.excluded("LO", devices.DEFAULT_NET_EXCLUDE)
    assert not devices.excluded("wlo1", devices.DEFAULT_NET_EXCLUDE)
    assert devices.excluded("zram0", devices.DEFAULT_DISK_EXCLUDE)
    assert not devices.excluded("vda", devices.DEFAULT_DISK_EXCLUDE)
