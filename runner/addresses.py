"""Where ./run can be reached, and which of those names DJANGO_ALLOWED_HOSTS admits.

Bound to a loopback address the service is for this machine alone. Bound to any
other (0.0.0.0 for all of them) it is reached through the machine's addresses and
host name, which Django refuses (HTTP 400) unless DJANGO_ALLOWED_HOSTS names them:
unset, ./run admits them for its children; set, it is respected, and the banner
says which names it does not admit and the value that would.
"""

import ipaddress
import socket
from dataclasses import dataclass, field

import psutil
from django.http.request import validate_host

ANY_ADDRESS = "0.0.0.0"  # noqa: S104 - the flag's own spelling of every address


@dataclass
class Reach:
    """The names a listening address is reached by, and what the children admit."""

    names: list[str]
    allowed_hosts: list[str]
    # Set when ./run chose allowed_hosts (DJANGO_ALLOWED_HOSTS being unset).
    admitted_for_children: bool = False
    refused: list[str] = field(default_factory=list)

    def allowed_hosts_value(self) -> str:
        """DJANGO_ALLOWED_HOSTS as it would admit every name."""
        wanted = [*self.allowed_hosts, *self.refused]
        return ",".join(dict.fromkeys(wanted))


def is_loopback(address: str) -> bool:
    """Whether an IPv4 address is a loopback one (127.0.0.0/8)."""
    try:
        return ipaddress.ip_address(address).is_loopback
    except ValueError:
        return False


def machine_addresses() -> list[str]:
    """This machine's IPv4 addresses, loopback first."""
    found = {
        entry.address
        for entries in psutil.net_if_addrs().values()
        for entry in entries
        if entry.family == socket.AF_INET
    }
    return sorted(found, key=lambda a: (not is_loopback(a), ipaddress.ip_address(a)))


def reach(
    bound: str,
    allowed_hosts: list[str],
    allowed_hosts_set: bool,
    addresses: list[str] | None = None,
    host_name: str | None = None,
) -> Reach:
    """The names that reach a service listening on the IPv4 address `bound`."""
    if is_loopback(bound):
        return Reach(names=[bound], allowed_hosts=list(allowed_hosts))
    addresses = machine_addresses() if addresses is None else addresses
    host_name = socket.gethostname() if host_name is None else host_name
    names = [*addresses, host_name] if bound == ANY_ADDRESS else [bound, host_name]
    names = list(dict.fromkeys(name for name in names if name))
    if not allowed_hosts_set:
        admitted = list(dict.fromkeys([*allowed_hosts, *names]))
        return Reach(names, admitted, admitted_for_children=True)
    refused = [name for name in names if not validate_host(name, allowed_hosts)]
    return Reach(names, list(allowed_hosts), refused=refused)
