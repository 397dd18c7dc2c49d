"""Which network interfaces and disks a snapshot counts; no psutil, no Django.

The totals ("Net sent", "Disk read") are meant to show the host's real traffic. An
interface or disk whose name matches an exclusion glob is left out of the snapshot
altogether: loopback and the virtual interfaces of containers, bridges and tunnels
carry traffic that is either local or counted again on the physical interface, and
loop, RAM and zram devices are not disks. Of the disks left, the totals count whole
physical disks only: a partition's I/O is inside its disk's, and a device-mapper or
software-RAID volume's I/O is counted again on the disks beneath it.

The server passes its settings (METRICS_NET_EXCLUDE, METRICS_DISK_EXCLUDE); these
are the defaults.
"""

from collections.abc import Iterable
from fnmatch import fnmatchcase
from pathlib import Path
from typing import Final

DEFAULT_NET_EXCLUDE: Final = (
    "lo",
    "lo[0-9]*",
    "docker*",
    "veth*",
    "br-*",
    "virbr*",
    "vnet*",
    "lxcbr*",
    "lxdbr*",
    "podman*",
    "cni*",
    "flannel*",
    "cali*",
    "cilium*",
    "ifb*",
    "tun*",
    "tap*",
    "wg*",
)
DEFAULT_DISK_EXCLUDE: Final = ("loop*", "ram*", "zram*")

SYS_BLOCK: Final = Path("/sys/block")


def excluded(name: str, patterns: Iterable[str]) -> bool:
    """Whether a device name matches one of the glob patterns (case-sensitive)."""
    return any(fnmatchcase(name, pattern) for pattern in patterns)


def is_whole_disk(name: str, sys_block: Path = SYS_BLOCK) -> bool:
    """Whether a disk psutil names is a whole physical disk: not a partition, and not
    a volume stacked on other disks (device-mapper, software RAID).

    Linux lists whole disks and volumes in /sys/block (partitions live inside their
    disk's directory there), and a stacked volume's `slaves` names the disks under
    it. Elsewhere psutil reports whole disks only, so every name counts.
    """
    if not sys_block.is_dir():
        return True
    # The kernel writes "/" in a device name as "!" (cciss/c0d0 is cciss!c0d0).
    entry = sys_block / name.replace("/", "!")
    if not entry.is_dir():
        return False
    slaves = entry / "slaves"
    try:
        return not any(slaves.iterdir())
    except OSError:
        return True
