"""A Redis master, its replica and three Sentinels on loopback ports, from Debian's
redis-server and redis-sentinel; each process in a directory of its own and
stopped by its PID. No Django.

The Sentinels are told of each other and of the replica in their configuration
files, so that they agree at once instead of after their first hello messages and
INFO replies (up to 10 s), and notice a dead master after DOWN_AFTER_MS.
"""

from __future__ import annotations

import secrets
import signal
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import redis

from runner.processes import stop_process
from tests.support.children import free_port
from tests.support.tls import Certificates, make_certificates

REDIS_SERVER = "/usr/bin/redis-server"
REDIS_SENTINEL = "/usr/bin/redis-sentinel"
MASTER_NAME = "mymaster"
# A master that does not answer for this long is down for a Sentinel.
DOWN_AFTER_MS = 1000
READY_WITHIN = 20.0


def missing_binaries() -> list[str]:
    """Debian's Redis binaries the cluster needs and this machine lacks."""
    return [path for path in (REDIS_SERVER, REDIS_SENTINEL) if not Path(path).exists()]


@dataclass
class Node:
    """One redis-server or redis-sentinel process on a loopback port."""

    name: str
    port: int
    directory: Path
    process: subprocess.Popen | None = None

    def start(self, binary: str, config: str) -> None:
        """Write the configuration file and start the process on it."""
        self.directory.mkdir(parents=True, exist_ok=True)
        conf = self.directory / f"{self.name}.conf"
        conf.write_text(config)
        self.process = subprocess.Popen(
            [binary, str(conf)],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.STDOUT,
        )

    def client(self, **options) -> redis.Redis:
        """A client of this process (plain TCP, or as `options` say)."""
        return redis.Redis(
            host="127.0.0.1", port=self.port, socket_timeout=2, **options
        )

    def log(self) -> str:
        """What the process logged."""
        path = self.directory / f"{self.name}.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def kill(self) -> None:
        """SIGKILL: the process dies without a word to its peers or clients."""
        if self.running():
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(10)

    def stop(self) -> None:
        if self.process is not None:
            stop_process(self.process)


def tls_config(node: Node, certificates: Certificates | None) -> str:
    """Listen with TLS only (no plain port), and speak TLS to the other nodes."""
    if certificates is None:
        return f"port {node.port}\n"
    return (
        f"port 0\ntls-port {node.port}\n"
        f"tls-cert-file {certificates.certificate}\n"
        f"tls-key-file {certificates.key}\n"
        f"tls-ca-cert-file {certificates.ca}\n"
        "tls-auth-clients no\ntls-replication yes\n"
    )


def server_config(node: Node, extra: str = "") -> str:
    """A redis-server without persistence, on 127.0.0.1 only."""
    return (
        f"bind 127.0.0.1\ndir {node.directory}\n"
        f'logfile "{node.directory / (node.name + ".log")}"\n'
        'save ""\nappendonly no\n'
        # A replica in sync at once, not after the default 5 s of waiting for more.
        "repl-diskless-sync-delay 0\n"
        f"{extra}"
    )


@dataclass
class SentinelCluster:
    """A master, replicas and Sentinels watching them under MASTER_NAME."""

    directory: Path
    replicas: int = 1
    sentinels: int = 3
    password: str | None = None
    sentinel_password: str | None = None
    tls: bool = False
    certificates: Certificates | None = None
    servers: list[Node] = field(default_factory=list)
    watchers: list[Node] = field(default_factory=list)

    def url(self, db: int = 0) -> str:
        """REDIS_URL for the service: every Sentinel, the master's name, the db,
        the passwords, and with TLS the authority to trust."""
        scheme = "rediss+sentinel" if self.tls else "redis+sentinel"
        auth = f":{self.password}@" if self.password else ""
        hosts = ",".join(f"127.0.0.1:{node.port}" for node in self.watchers)
        params = []
        if self.sentinel_password:
            params.append(f"sentinel_password={self.sentinel_password}")
        if self.certificates is not None:
            params.append(f"ssl_ca_certs={self.certificates.ca}")
        query = f"?{'&'.join(params)}" if params else ""
        return f"{scheme}://{auth}{hosts}/{MASTER_NAME}/{db}{query}"

    def start(self) -> None:
        """Start the master, the replicas and the Sentinels; wait until the
        replicas are in sync and every Sentinel knows them all."""
        if self.tls:
            self.certificates = make_certificates(self.directory / "tls")
        auth = ""
        if self.password:
            auth = f"requirepass {self.password}\nmasterauth {self.password}\n"
        master = self._node("master")
        auth += tls_config(master, self.certificates)
        master.start(REDIS_SERVER, server_config(master, auth))
        self.servers.append(master)
        for number in range(1, self.replicas + 1):
            replica = self._node(f"replica-{number}")
            follow = f"replicaof 127.0.0.1 {master.port}\n"
            follow += tls_config(replica, self.certificates)
            replica.start(REDIS_SERVER, server_config(replica, auth + follow))
            self.servers.append(replica)
        ids = [secrets.token_hex(20) for _ in range(self.sentinels)]
        self.watchers = [self._node(f"sentinel-{n}") for n in range(self.sentinels)]
        for index, watcher in enumerate(self.watchers):
            watcher.start(REDIS_SENTINEL, self._sentinel_config(index, ids))
        self.wait_until_ready()

    def _node(self, name: str) -> Node:
        return Node(name, free_port(), self.directory / name)

    def _sentinel_config(self, index: int, ids: list[str]) -> str:
        watcher, master = self.watchers[index], self.servers[0]
        lines = [
            tls_config(watcher, self.certificates).strip(),
            "bind 127.0.0.1",
            f"dir {watcher.directory}",
            f'logfile "{watcher.directory / (watcher.name + ".log")}"',
            f"sentinel myid {ids[index]}",
            f"sentinel monitor {MASTER_NAME} 127.0.0.1 {master.port} 2",
            f"sentinel down-after-milliseconds {MASTER_NAME} {DOWN_AFTER_MS}",
            f"sentinel failover-timeout {MASTER_NAME} 10000",
            f"sentinel parallel-syncs {MASTER_NAME} 1",
        ]
        if self.password:
            lines.append(f"sentinel auth-pass {MASTER_NAME} {self.password}")
        if self.sentinel_password:
            lines.append(f"requirepass {self.sentinel_password}")
            lines.append(f"sentinel sentinel-pass {self.sentinel_password}")
        lines += [
            f"sentinel known-replica {MASTER_NAME} 127.0.0.1 {replica.port}"
            for replica in self.servers[1:]
        ]
        lines += [
            f"sentinel known-sentinel {MASTER_NAME} 127.0.0.1 {other.port} {ids[n]}"
            for n, other in enumerate(self.watchers)
            if other is not watcher
        ]
        return "\n".join(lines) + "\n"

    def _tls_options(self) -> dict:
        if self.certificates is None:
            return {}
        return {"ssl": True, "ssl_ca_certs": str(self.certificates.ca)}

    def server_client(self, node: Node) -> redis.Redis:
        return node.client(password=self.password, **self._tls_options())

    def sentinel_client(self, node: Node) -> redis.Redis:
        return node.client(password=self.sentinel_password, **self._tls_options())

    def wait_until_ready(self) -> None:
        deadline = time.monotonic() + READY_WITHIN
        while not self._ready():
            for node in (*self.servers, *self.watchers):
                if not node.running():
                    raise RuntimeError(f"{node.name} exited at start:\n{node.log()}")
            if time.monotonic() > deadline:
                logs = "\n".join(n.log()[-800:] for n in self.watchers)
                raise TimeoutError(f"the Sentinel cluster never settled:\n{logs}")
            time.sleep(0.1)

    def _ready(self) -> bool:
        """Every replica in sync, and every Sentinel seeing them all up."""
        try:
            for replica in self.servers[1:]:
                info = self.server_client(replica).info("replication")
                if info.get("master_link_status") != "up":
                    return False
            for watcher in self.watchers:
                client = self.sentinel_client(watcher)
                state = client.sentinel_master(MASTER_NAME)
                replicas = client.sentinel_slaves(MASTER_NAME)
                peers = client.sentinel_sentinels(MASTER_NAME)
                if (
                    len(replicas) != len(self.servers) - 1
                    or len(peers) != len(self.watchers) - 1
                    or state["is_sdown"]
                    or any(node["is_sdown"] for node in (*replicas, *peers))
                    or any(node["master-link-status"] != "ok" for node in replicas)
                ):
                    return False
        except (redis.RedisError, KeyError):
            return False
        return True

    def master_port(self) -> int | None:
        """The master's port as the first Sentinel that answers names it."""
        for watcher in self.watchers:
            if not watcher.running():
                continue
            try:
                address = self._master_address(watcher)
            except redis.RedisError:
                continue
            if address:
                return int(address[1])
        return None

    def _master_address(self, watcher: Node) -> tuple | None:
        client = self.sentinel_client(watcher)
        return client.sentinel_get_master_addr_by_name(MASTER_NAME)

    def master(self) -> Node:
        """The server the Sentinels name as master now."""
        port = self.master_port()
        return next(node for node in self.servers if node.port == port)

    def promoted_since(self, old: Node) -> Node | None:
        """The new master, once every running Sentinel names one other than `old`
        and it says it is a master; else None."""
        ports = set()
        for watcher in self.watchers:
            if watcher.running():
                try:
                    address = self._master_address(watcher)
                except redis.RedisError:
                    return None
                ports.add(int(address[1]) if address else None)
        if len(ports) != 1 or old.port in ports or None in ports:
            return None
        new = next(node for node in self.servers if node.port in ports)
        try:
            role = self.server_client(new).role()[0]
        except redis.RedisError:
            return None
        return new if role in (b"master", "master") else None

    def stop(self) -> None:
        """Stop every process by its PID: the Sentinels first, so that they do not
        fail over as the servers go."""
        for node in (*self.watchers, *self.servers):
            node.stop()


@contextmanager
def sentinel_cluster(directory: Path, **options) -> Iterator[SentinelCluster]:
    """A running SentinelCluster in `directory`, stopped on exit."""
    cluster = SentinelCluster(directory, **options)
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.stop()
