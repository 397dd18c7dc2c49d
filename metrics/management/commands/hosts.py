"""Manage the hosts whose snapshots the service streams: add, rotate, disable,
enable, remove, list, and grant or revoke who may see them."""

import argparse
from datetime import UTC, datetime

from django.contrib.auth import get_user_model
from django.contrib.auth.base_user import AbstractBaseUser
from django.contrib.auth.models import Group
from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError
from redis.exceptions import RedisError

from metrics import hosts
from metrics.hoststate import HostState, load_host_states
from metrics.models import Host

UNREACHABLE = "unknown (Redis unreachable)"


def plain(text: str) -> str:
    """Output without the style Django gives stderr (it is no error)."""
    return text


class Command(BaseCommand):
    help = (
        "Manage hosts: 'add NAME' and 'rotate NAME' print the agent's token alone "
        "on the last line of stdout (shown once); 'disable', 'enable', 'remove' "
        "NAME; 'list' shows each host's state and when it was last seen; 'grant' "
        "and 'revoke' NAME --user USERNAME or --group GROUPNAME say who may see it."
    )

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        subcommands = parser.add_subparsers(
            dest="subcommand", metavar="SUBCOMMAND", required=True
        )
        named = {
            "add": "Create a host and print its agent token (shown once).",
            "rotate": "Replace a host's token; the old one stops working at once.",
            "disable": "Disable a host: its agent is refused and disconnected.",
            "enable": "Enable a disabled host again.",
            "remove": "Delete a host.",
        }
        for name, text in named.items():
            subparser = subcommands.add_parser(name, help=text, description=text)
            subparser.add_argument("name", metavar="NAME", help="The host's name.")
        access = {
            "grant": "Let a user, or a group's members, see a host.",
            "revoke": "Take back a grant: the sockets it allowed close (4004).",
        }
        for name, text in access.items():
            subparser = subcommands.add_parser(name, help=text, description=text)
            subparser.add_argument("name", metavar="NAME", help="The host's name.")
            viewer = subparser.add_mutually_exclusive_group(required=True)
            viewer.add_argument("--user", metavar="USERNAME", help="A user's name.")
            viewer.add_argument("--group", metavar="GROUPNAME", help="A group's name.")
        subcommands.add_parser(
            "list",
            help="List the hosts: name, state, kind, last seen.",
            description="List the hosts: name, state, kind, last seen.",
        )

    def handle(self, *args, subcommand: str, **options) -> None:
        self.verbosity = options["verbosity"]
        if subcommand == "list":
            self.list_hosts()
            return
        name = options["name"]
        if subcommand == "add":
            self.add(name)
            return
        host = self.find(name)
        if subcommand == "rotate":
            self.rotate(host)
        elif subcommand == "disable":
            self.set_enabled(host, False)
        elif subcommand == "enable":
            self.set_enabled(host, True)
        elif subcommand == "remove":
            hosts.remove_host(host)
            self.say(f"Removed host {host.name}.")
        else:
            self.change_access(subcommand, host, options["user"], options["group"])

    def add(self, name: str) -> None:
        try:
            host, token = hosts.create_host(name)
        except ValidationError as error:
            raise CommandError(one_line(error)) from None
        self.say(
            f"Created host {host.name}. Its agent token follows, shown this once; "
            "run the agent with: monitor-agent --server URL --token TOKEN"
        )
        self.stdout.write(token)

    def rotate(self, host: Host) -> None:
        token = hosts.rotate_token(host)
        self.say(
            f"New token for host {host.name}; the old one no longer works. It "
            "follows, shown this once: give it to the agent (--token TOKEN)."
        )
        self.stdout.write(token)

    def set_enabled(self, host: Host, enabled: bool) -> None:
        word = "enabled" if enabled else "disabled"
        if host.enabled == enabled:
            self.say(f"Host {host.name} is already {word}.")
            return
        hosts.set_enabled(host, enabled)
        self.say(f"Host {host.name} {word}.")

    def change_access(
        self, subcommand: str, host: Host, username: str | None, group: str | None
    ) -> None:
        viewer = find_viewer(username, group)
        who = f"user {username}" if username is not None else f"group {group}"
        if subcommand == "grant":
            if hosts.grant_host(host, viewer):
                self.say(f"Host {host.name} granted to {who}.")
            else:
                self.say(f"Host {host.name} was granted to {who}; nothing changed.")
        elif hosts.revoke_host(host, viewer):
            self.say(f"Host {host.name} no longer granted to {who}.")
        else:
            self.say(f"Host {host.name} was not granted to {who}; nothing changed.")

    def find(self, name: str) -> Host:
        try:
            hosts.validate_host_name(name)
            return hosts.get_host(name)
        except ValidationError as error:
            raise CommandError(one_line(error)) from None
        except Host.DoesNotExist:
            raise CommandError(
                f"No host named {name!r} (see: manage.py hosts list)."
            ) from None

    def list_hosts(self) -> None:
        found = list(Host.objects.order_by("name"))
        if not found:
            self.say("No hosts yet; add one with: manage.py hosts add NAME")
            return
        try:
            states: dict[str, HostState] | None = load_host_states(
                [host.name for host in found]
            )
        except (RedisError, OSError):
            states = None
        rows = [("NAME", "STATE", "KIND", "ONLINE", "LAST SEEN")]
        rows += [describe(host, states) for host in found]
        widths = [max(len(row[column]) for row in rows) for column in range(4)]
        for row in rows:
            padded = [row[column].ljust(widths[column]) for column in range(4)]
            self.stdout.write("  ".join([*padded, row[4]]))
        if states is None:
            self.stderr.write(
                "Redis did not answer: whether hosts are online, and when they "
                "were last seen, is unknown."
            )

    def say(self, text: str) -> None:
        """A note for the person at the terminal, on stderr (stdout is the token)."""
        if self.verbosity > 0:
            self.stderr.write(text, style_func=plain)


def find_viewer(username: str | None, group: str | None) -> AbstractBaseUser | Group:
    """The user named, or the group named (exactly one is given); CommandError
    if there is none."""
    if username is not None:
        users = get_user_model()._default_manager
        try:
            return users.get_by_natural_key(username)
        except users.model.DoesNotExist:
            raise CommandError(f"No user named {username!r}.") from None
    try:
        return Group.objects.get(name=group)
    except Group.DoesNotExist:
        raise CommandError(f"No group named {group!r}.") from None


def describe(host: Host, states: dict[str, HostState] | None) -> tuple[str, ...]:
    """A host's row of `hosts list`."""
    state = "enabled" if host.enabled else "disabled"
    kind = "local" if host.local else "agent"
    if states is None:
        return (host.name, state, kind, "unknown", UNREACHABLE)
    known = states.get(host.name)
    if known is None or known.last_seen is None:
        # Connected (its sender holds it), no snapshot yet: an idle host's first
        # may be METRICS_IDLE_INTERVAL away.
        if known is not None and known.online:
            return (host.name, state, kind, "yes", "no snapshot yet")
        return (host.name, state, kind, "no", "never")
    return (
        host.name,
        state,
        kind,
        "yes" if known.online else "no",
        format_time(known.last_seen),
    )


def format_time(seconds: float) -> str:
    """An epoch time as ISO 8601 UTC to the second, with a Z."""
    moment = datetime.fromtimestamp(seconds, UTC)
    return moment.isoformat(timespec="seconds").replace("+00:00", "Z")


def one_line(error: ValidationError) -> str:
    return " ".join(error.messages)
