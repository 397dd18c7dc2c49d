"""--hosts mode's simulated agents: one process holding one agent socket per host.

Each agent speaks docs/agent-protocol.md as `monitor-agent` does, minus collecting
and backfill: it connects to /api/ws/agent?interval=S with its host's bearer token,
waits for the hello, follows config frames (live or idle, intervals) and sends the
same real snapshot data under a fresh timestamp on a drift-free schedule (tick k at
start + phase + k x interval on the monotonic clock; a tick missed is skipped, not
sent late). The agents' phases are spread over the interval, as independent
machines' would be. Each send's wall time is noted right before the frame is
written: the time latencies are measured from. The process answers the tool over a
pipe, as the client processes do (tests.perf.fanout.clients.ClientPool runs it).
"""

import asyncio
import contextlib
import json
import math
import signal
import time
from collections import Counter
from datetime import UTC, datetime
from multiprocessing.connection import Connection
from typing import Any

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from tests.perf.fanout.clients import CLOSE_TIMEOUT, Served

PATH = "/api/ws/agent"
HELLO_TIMEOUT = 15.0


def stamp(moment: float) -> str:
    """A snapshot timestamp of a Unix time: UTC, milliseconds, Z."""
    text = datetime.fromtimestamp(moment, UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")
    return text[:-3] + "Z"


class Agent:
    """One simulated agent: its socket, its cadence and what it sent."""

    def __init__(self, name: str, phase: float) -> None:
        self.name = name
        self.phase = phase
        self.socket: ClientConnection | None = None
        self.interval = 1.0
        self.live = False
        self.idle_interval = 0.0
        self.last_sent = -math.inf  # monotonic
        self.latest = ""
        # (timestamp, wall time right before the send), in order.
        self.sent: list[tuple[str, float]] = []
        self.errors: list[str] = []
        self.close_code: int | str | None = None

    def adopt(self, frame: dict[str, Any]) -> None:
        """Take the cadence of a hello or config frame (keeping what it lacks)."""
        self.interval = float(frame.get("interval", self.interval))
        self.live = bool(frame.get("live", self.live))
        self.idle_interval = float(frame.get("idle_interval", self.idle_interval))

    def due(self, now: float) -> bool:
        """Whether this tick sends: every tick when live, idle ones every
        idle_interval (never when it is 0): the tick nearest to it, as a tick
        lands a little early or late (an idle interval of one tick is every tick,
        not every other)."""
        if self.live:
            return True
        return (
            self.idle_interval > 0
            and now - self.last_sent >= self.idle_interval - self.interval / 2
        )


class AgentFleet(Served):
    """The process's agents, and its answers to the tool."""

    def __init__(self, link: Connection) -> None:
        self.link = link
        self.agents: list[Agent] = []
        self.tasks: set[asyncio.Task] = set()
        self.frame_head = ""
        self.frame_tail = ""

    async def handle(self, command: str, payload: Any) -> Any:
        """Do one request of the tool."""
        if command == "ping":
            return None
        if command == "connect":
            return await self.connect_all(**payload)
        if command == "sent":
            return self.report_sent(payload)
        raise ValueError(f"unknown command {command!r}")

    async def connect_all(
        self,
        server: str,
        tokens: dict[str, str],
        interval: float,
        data: str,
        open_timeout: float,
    ) -> dict[str, Any]:
        """Connect one agent per host at once, wait for every hello, start their
        schedules; return how many said hello and the others' failures."""
        self.frame_head = '{"type":"metrics","timestamp":"'
        self.frame_tail = '","data":' + data + "}"
        count = len(tokens)
        self.agents = [
            Agent(name, index * interval / count) for index, name in enumerate(tokens)
        ]
        url = f"{server}{PATH}?interval={interval:g}"
        failures = await asyncio.gather(
            *(
                self.open_agent(agent, url, tokens[agent.name], open_timeout)
                for agent in self.agents
            )
        )
        start = time.monotonic()
        for agent in self.agents:
            if agent.socket is not None:
                for job in (self.listen(agent), self.run_schedule(agent, start)):
                    task = asyncio.create_task(job)
                    self.tasks.add(task)
                    task.add_done_callback(self.tasks.discard)
        failed = Counter(kind for kind in failures if kind is not None)
        return {
            "connected": count - sum(failed.values()),
            "failures": dict(failed),
            "live": sum(agent.live for agent in self.agents),
        }

    async def open_agent(
        self, agent: Agent, url: str, token: str, open_timeout: float
    ) -> str | None:
        """Connect one agent and read its hello; return the failure's kind, if any."""
        try:
            socket = await connect(
                url,
                additional_headers={"Authorization": f"Bearer {token}"},
                open_timeout=open_timeout,
                compression=None,
                close_timeout=5,
            )
        except TimeoutError:
            return "timeout"
        except InvalidStatus as error:
            return f"http_{error.response.status_code}"
        except Exception as error:  # every other failure is counted, by name
            return f"other:{type(error).__name__}"
        try:
            async with asyncio.timeout(HELLO_TIMEOUT):
                hello = parse_frame(await socket.recv())
        except ConnectionClosed as error:
            code = error.rcvd.code if error.rcvd is not None else 1006
            return f"closed_{code}"
        except (TimeoutError, ValueError):
            await socket.close()
            return "no_hello"
        if hello.get("type") != "hello":
            await socket.close()
            return "no_hello"
        agent.adopt(hello)
        agent.socket = socket
        return None

    async def listen(self, agent: Agent) -> None:
        """Follow the server's config frames; keep its error messages."""
        try:
            async for text in agent.socket:
                try:
                    frame = parse_frame(text)
                except ValueError:
                    continue
                if frame.get("type") == "config":
                    agent.adopt(frame)
                elif frame.get("type") == "error":
                    agent.errors.append(str(frame.get("message")))
        except ConnectionClosed:
            pass
        agent.close_code = agent.socket.close_code or 1006

    async def run_schedule(self, agent: Agent, start: float) -> None:
        """Send on the agent's drift-free schedule until its socket closes."""
        origin, interval, tick = start + agent.phase, agent.interval, 0
        while agent.close_code is None:
            if agent.interval != interval:  # a changed interval: a new schedule
                origin, interval, tick = time.monotonic(), agent.interval, 0
            due = origin + tick * interval
            delay = due - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            elif -delay >= interval:  # overran: skip the missed ticks
                tick += math.floor(-delay / interval)
                continue
            tick += 1
            if agent.interval != interval or not agent.due(time.monotonic()):
                continue
            await self.send(agent)

    async def send(self, agent: Agent) -> None:
        """Send one snapshot under a fresh, strictly increasing timestamp."""
        now = time.time()
        timestamp = stamp(now)
        if timestamp <= agent.latest:
            return
        try:
            await agent.socket.send(self.frame_head + timestamp + self.frame_tail)
        except ConnectionClosed:
            return
        agent.latest = timestamp
        agent.last_sent = time.monotonic()
        agent.sent.append((timestamp, now))

    def report_sent(self, since: dict[str, int]) -> dict[str, Any]:
        """Per host, what was sent from index `since[host]` on; and the agents whose
        socket closed (code) and the server's error messages, if any."""
        return {
            "sent": {
                agent.name: agent.sent[since.get(agent.name, 0) :]
                for agent in self.agents
            },
            "closed": {
                agent.name: agent.close_code
                for agent in self.agents
                if agent.close_code is not None
            },
            "errors": {
                agent.name: agent.errors[-3:] for agent in self.agents if agent.errors
            },
            "live": sum(agent.live for agent in self.agents),
        }

    async def close_all(self) -> None:
        """Close every agent socket (1000), giving up on slow closing handshakes."""
        sockets = [agent.socket for agent in self.agents if agent.socket is not None]
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(CLOSE_TIMEOUT / 2):
                await asyncio.gather(
                    *(socket.close() for socket in sockets), return_exceptions=True
                )
        for task in list(self.tasks):
            task.cancel()


def parse_frame(text: str | bytes) -> dict[str, Any]:
    """A server frame as a dict; ValueError if it is not a JSON object."""
    frame = json.loads(text)
    if not isinstance(frame, dict):
        raise ValueError("not a JSON object")
    return frame


def run_agent_process(link: Connection) -> None:
    """Entry point of the agents' process: run them until the tool says close."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    asyncio.run(AgentFleet(link).serve())
