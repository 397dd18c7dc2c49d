// Socket: the live stream. Load the history first, then open the WebSocket with the
// access token as its `bearer` subprotocol; hand it each renewed token in an `auth`
// frame; reconnect by itself with a jittered, exponentially growing delay, resuming
// from the offset (seq, epoch) of the last snapshot: the server sends what was
// missed, and only when it cannot (`recovered: false`) is the gap loaded from the
// history. Ping a quiet socket, drop a dead one.
// When the server answers 5xx, closes with 1011 or stops sending, ask /readyz why:
// a server that cannot reach its data store (Redis) or database is shown as such,
// not as an endless "Reconnecting…", and the page reconnects once it can again.
// The stream is this page's host's (hosts.js): a host that goes offline is shown as
// such, not as a stale stream; one the server does not know (4004) ends the stream,
// "withdrawn" if it had been streaming. The overview follows the fleet's frames
// instead (follow()): the same connection, without a history.
// This module never touches the page: it reports through the handlers the entry
// module gave it (setHandlers).

import * as auth from "./auth.js";
import { hostQuery, pageHost } from "./hosts.js";
import { HISTORY_SECONDS } from "./snapshots.js";

const BACKOFF_FIRST = 0.5; // seconds before the first reconnect (before jitter)
const BACKOFF_MAX = 30; // ceiling of the reconnect delay, in seconds
const PING_EVERY = 30_000; // ms of silence after which the socket is pinged
const PONG_WITHIN = 10_000; // ms a ping may go unanswered before the socket is dropped
const OPEN_WITHIN = 15_000; // ms a WebSocket handshake may take
const CLOSE_AUTH_FAILED = 4001; // bad, expired or revoked token
const CLOSE_FORBIDDEN = 4003; // the user may not watch this host
const CLOSE_NO_HOST = 4004; // no such host (unknown or disabled), or none to show
const CLOSE_SERVER_ERROR = 1011; // e.g. "data store unavailable"
const DIAGNOSE_EVERY = 3000; // ms between two questions to /readyz

// What the stream carries: the page's host's snapshots after its history, by default.
const source = {
  path: `/api/ws/metrics${hostQuery() ? `?${hostQuery()}` : ""}`,
  frame: "metrics", // the type of the frames that keep the stream live
  history: true,
};

const stream = {
  socket: null,
  generation: 0, // bumped by stop(), so late answers for a stopped stream are ignored
  connecting: false, // history being loaded before the socket opens
  attempt: 0,
  interval: 5, // seconds between snapshots, from the history endpoint
  lastSnapshotAt: 0, // ms (this clock) when the last snapshot came
  newest: 0, // the newest snapshot's timestamp (ms), from the history or the socket
  offset: null, // {seq, epoch} of the last snapshot the socket sent, to resume from
  hostOnline: true, // false from a `host` frame saying so until data flows again
  hostOnlineAt: 0, // ms when the host was last said to be back online
  missing: false, // the server has no such host: nothing to reconnect to
  delivered: false, // the socket has streamed since start: a 4004 now means withdrawn
  openedAt: 0, // ms when the socket opened (or began to)
  lastMessageAt: 0, // ms when the socket last said anything (a snapshot, a pong)
  lastPingAt: 0,
  historyLoaded: false,
  refusedBefore: false, // the last socket was refused (4001) with no snapshot since
  reconnectTimer: 0,
  unavailable: null, // the server's failing checks (["redis"]), while it says so
  diagnosedAt: 0, // ms when /readyz was last asked
  diagnosing: false,
};

const handlers = {
  // "reconnecting", "live", "stale", "offline" (the host) or "unavailable"
  state: (state, failing) => {},
  history: (history, { first }) => {}, // the history endpoint's answer; first since start
  snapshot: (message) => {}, // a snapshot from the socket
  host: (online) => {}, // the host went offline (false) or came back (true)
  missing: (reason) => {}, // the server has no such host (or none to show): stopped
  ended: (reason) => {}, // the server ended the session: "refused" or "forbidden"
};

/** Say what the page does with the stream's news. */
export function setHandlers(given) {
  Object.assign(handlers, given);
}

/**
 * Follow the socket at `path` for its frames of type `frame` (each keeps the stream
 * live, and may say the interval), with no history: the overview's fleet stream.
 */
export function follow(path, frame) {
  Object.assign(source, { path, frame, history: false });
}

/** Seconds between snapshots, as the server last said. */
export function snapshotInterval() {
  return stream.interval;
}

/**
 * Open the socket: after loading the history at first, or the gap when there is no
 * offset to resume from; resuming from the last snapshot's offset otherwise.
 */
export async function connect() {
  const generation = stream.generation;
  clearTimeout(stream.reconnectTimer);
  stream.connecting = true;
  try {
    if (auth.refreshIsDue() && !(await auth.refreshAccess())) return;
    if (source.history && (!stream.historyLoaded || !stream.offset)) {
      await loadHistory(generation);
    }
    if (generation !== stream.generation) return;
    openSocket();
  } catch (error) {
    if (!historyFailed(error, generation)) scheduleReconnect();
  } finally {
    if (generation === stream.generation) stream.connecting = false;
  }
}

/** Load the history: all of it at first, else the gap since the last snapshot. */
async function loadHistory(generation) {
  const gap = (Date.now() - stream.lastSnapshotAt) / 1000 + 3 * stream.interval;
  const seconds = stream.historyLoaded
    ? Math.ceil(Math.min(HISTORY_SECONDS, gap))
    : HISTORY_SECONDS;
  const history = await auth.loadHistory(seconds);
  if (generation !== stream.generation) return;
  stream.interval = history.interval;
  // Snapshots newer than any we had: the host sent data while we were away.
  const fresh = history.snapshots.filter(isFresh).length > 0;
  if (fresh && !stream.hostOnline) hostChanged(true, { state: false });
  handlers.history(history, { first: !stream.historyLoaded });
  stream.historyLoaded = true;
}

/**
 * What a failed history load means: nothing (the session ended, or the stream was
 * stopped), no such host, or a server to ask why (5xx). True when the failure
 * was dealt with; false when the caller should retry.
 */
function historyFailed(error, generation) {
  if (error instanceof auth.SessionEnded || generation !== stream.generation) return true;
  if (error instanceof auth.HttpError && error.status === 404) {
    noSuchHost("no such host");
    return true;
  }
  if (error instanceof auth.HttpError && error.status >= 500) diagnose();
  return false;
}

/** The server could not send all we missed: load the gap from the history. */
async function fillGap() {
  const generation = stream.generation;
  try {
    await loadHistory(generation);
  } catch (error) {
    // The live stream goes on; the gap stays until the next reconnect fills it.
    historyFailed(error, generation);
  }
}

/** Close the socket and forget the stream's progress: the session has ended. */
export function stop() {
  stream.generation += 1;
  clearTimeout(stream.reconnectTimer);
  dropSocket();
  stream.attempt = 0;
  stream.connecting = false;
  stream.historyLoaded = false;
  stream.refusedBefore = false;
  stream.unavailable = null;
  stream.lastSnapshotAt = stream.openedAt = stream.newest = stream.hostOnlineAt = 0;
  stream.offset = null;
  stream.hostOnline = true;
  stream.missing = false;
  stream.delivered = false;
}

/** Hand the open socket the new access token, or the server closes it at expiry. */
export function renew() {
  if (stream.socket?.readyState === WebSocket.OPEN) {
    stream.socket.send(JSON.stringify({ type: "auth", token: auth.accessToken() }));
  }
}

function openSocket() {
  const scheme = location.protocol === "https:" ? "wss" : "ws";
  // The token goes as a subprotocol, not in the URL, which servers and proxies log.
  // Resuming a host's stream: from the offset of the last snapshot, if there is one.
  const offset = source.history ? stream.offset : null;
  const resume = offset
    ? `since=${offset.seq}&epoch=${encodeURIComponent(offset.epoch)}`
    : "";
  const path = resume
    ? `${source.path}${source.path.includes("?") ? "&" : "?"}${resume}`
    : source.path;
  const url = `${scheme}://${location.host}${path}`;
  const socket = new WebSocket(url, ["bearer", auth.accessToken()]);
  stream.socket = socket;
  stream.openedAt = Date.now(); // the handshake started; onopen resets it
  socket.onopen = () => {
    stream.openedAt = stream.lastMessageAt = Date.now();
  };
  socket.onmessage = (event) => {
    stream.lastMessageAt = Date.now();
    const message = JSON.parse(event.data);
    // Another host's message would be the server's mistake: never draw it as ours.
    if (pageHost && message.host && message.host !== pageHost) return;
    if (message.type === "host") {
      hostChanged(message.online !== false);
      return;
    }
    if (message.type === "resume") {
      if (message.recovered !== true) {
        stream.offset = null;
        fillGap();
      }
      return;
    }
    if (message.type !== source.frame) return;
    if (message.interval > 0) stream.interval = message.interval;
    if (skipsAhead(message)) {
      // Stored but never sent to this socket (a broadcast lost in a Redis
      // failover): resuming from the last one drawn replays them, this one too.
      dropSocket();
      connect();
      return;
    }
    if (Number.isInteger(message.seq) && typeof message.epoch === "string") {
      stream.offset = { seq: message.seq, epoch: message.epoch };
    }
    stream.lastSnapshotAt = stream.lastMessageAt;
    stream.delivered = true;
    stream.attempt = 0;
    stream.refusedBefore = false;
    stream.unavailable = null;
    // The latest snapshot sent on connect may be one we have, from before the host
    // went offline: only a newer one says that data flows again.
    if (isFresh(message) && !stream.hostOnline) hostChanged(true);
    handlers.state(stream.hostOnline ? "live" : "offline");
    handlers.snapshot(message);
  };
  socket.onclose = (event) => {
    if (stream.socket !== socket) return;
    stream.socket = null;
    if (event.code === CLOSE_FORBIDDEN) handlers.ended("forbidden");
    else if (event.code === CLOSE_NO_HOST) noSuchHost(event.reason);
    else if (event.code === CLOSE_AUTH_FAILED) retryRefused();
    else {
      if (event.code === CLOSE_SERVER_ERROR) diagnose();
      scheduleReconnect();
    }
  };
}

/** True if snapshots of this epoch came between the last one and `message`. */
function skipsAhead(message) {
  const offset = stream.offset;
  return Boolean(offset) && message.epoch === offset.epoch && message.seq > offset.seq + 1;
}

/** True if `message` is newer than any snapshot seen so far (and remember it). */
function isFresh(message) {
  const time = Date.parse(message.timestamp);
  if (!(time > stream.newest)) return false;
  stream.newest = time;
  return true;
}

/** The host went offline, or came back (and, with `state`, the stream with it). */
function hostChanged(online, { state = true } = {}) {
  if (online === stream.hostOnline) return;
  stream.hostOnline = online;
  if (online) stream.hostOnlineAt = Date.now();
  handlers.host(online);
  if (state && stream.socket?.readyState === WebSocket.OPEN) {
    handlers.state(online ? "live" : "offline");
  }
}

/** The server's list of hosts says this one is offline (until data flows again). */
export function markHostOffline() {
  if (!stream.missing) hostChanged(false);
}

/**
 * The server has no such host (or no default to show), or, when it had been
 * streaming it, no longer lets this user see it: stop, and do not retry.
 */
function noSuchHost(reason) {
  const withdrawn = stream.delivered;
  stop();
  stream.missing = true;
  handlers.missing(withdrawn ? "withdrawn" : reason || "no such host");
}

/** After a 4001, try once more with a new access token (ours may just have expired). */
async function retryRefused() {
  if (stream.refusedBefore) {
    handlers.ended("refused");
    return;
  }
  stream.refusedBefore = true;
  try {
    if (await auth.refreshAccess()) connect();
  } catch {
    scheduleReconnect(); // the server is unreachable: keep trying
  }
}

function dropSocket() {
  const socket = stream.socket;
  stream.socket = null;
  if (socket) {
    socket.onclose = socket.onmessage = socket.onopen = null;
    socket.close();
  }
}

/**
 * Ask /readyz which of the server's checks fail (at most every DIAGNOSE_EVERY ms).
 * While one does, the page says so; once none does, it reconnects at once.
 */
async function diagnose() {
  const now = Date.now();
  if (stream.diagnosing || now - stream.diagnosedAt < DIAGNOSE_EVERY) return;
  const generation = stream.generation;
  stream.diagnosing = true;
  stream.diagnosedAt = now;
  let failing;
  try {
    failing = await auth.failingChecks();
  } catch {
    return; // the server itself is unreachable: that is "Reconnecting…"
  } finally {
    stream.diagnosing = false;
  }
  if (generation !== stream.generation) return;
  if (failing.length) {
    stream.unavailable = failing;
    handlers.state("unavailable", failing);
  } else if (stream.unavailable) {
    stream.unavailable = null;
    if (stream.socket?.readyState !== WebSocket.OPEN) reconnectNow();
  }
}

/** Reconnect after a jittered, exponentially growing delay. */
function scheduleReconnect() {
  if (stream.unavailable) handlers.state("unavailable", stream.unavailable);
  else handlers.state("reconnecting");
  clearTimeout(stream.reconnectTimer);
  const ceiling = Math.min(BACKOFF_MAX, BACKOFF_FIRST * 2 ** stream.attempt);
  const delay = ceiling / 2 + (Math.random() * ceiling) / 2;
  stream.attempt += 1;
  stream.reconnectTimer = setTimeout(connect, delay * 1000);
}

/** Reconnect at once (the network is back), unless a connection is under way. */
export function reconnectNow() {
  if (auth.hasSession() && !stream.socket && !stream.connecting && !stream.missing) {
    stream.attempt = 0;
    connect();
  }
}

/**
 * Once a second: mark the stream stale (and ask the server why), ping a quiet
 * socket, drop a dead one; while the server says it cannot serve, ask it again.
 */
export function watch() {
  const socket = stream.socket;
  const now = Date.now();
  if (stream.unavailable) diagnose();
  if (socket?.readyState === WebSocket.CONNECTING && now - stream.openedAt > OPEN_WITHIN) {
    dropSocket(); // a handshake lost in the network
    scheduleReconnect();
  }
  if (socket?.readyState !== WebSocket.OPEN) return;
  const since = Math.max(stream.lastSnapshotAt, stream.openedAt, stream.hostOnlineAt);
  const waited = now - since;
  if (!stream.hostOnline) {
    handlers.state("offline"); // no snapshots is what an offline host means
  } else if (waited > 2 * stream.interval * 1000) {
    if (stream.unavailable) handlers.state("unavailable", stream.unavailable);
    else handlers.state("stale");
    diagnose();
  }
  const pingAfter = Math.min(PING_EVERY, 2 * stream.interval * 1000);
  const quiet = now - stream.lastMessageAt;
  if (quiet > pingAfter + PONG_WITHIN) {
    dropSocket(); // no answer to our ping: the network is gone without a close
    scheduleReconnect();
  } else if (quiet > pingAfter && now - stream.lastPingAt > pingAfter) {
    stream.lastPingAt = now;
    socket.send(JSON.stringify({ type: "ping" }));
  }
}
