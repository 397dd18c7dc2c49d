// The host monitor dashboard: log in, draw the last minutes at once from the history
// endpoint, then follow the live WebSocket stream, reconnecting by itself.
// Plain ES module, no build step; uPlot (vendor/uplot) is loaded before it as a global.

const HISTORY_SECONDS = 600; // drawn on open (the server keeps up to 900)
const MAX_POINTS = 2000; // hard bound on kept points, whatever the interval
const BACKOFF_FIRST = 0.5; // seconds before the first reconnect (before jitter)
const BACKOFF_MAX = 30; // ceiling of the reconnect delay, in seconds
const PING_EVERY = 30_000; // ms of silence after which the socket is pinged
const PONG_WITHIN = 10_000; // ms a ping may go unanswered before the socket is dropped
const OPEN_WITHIN = 15_000; // ms a WebSocket handshake may take
const REFRESH_AT = 0.8; // share of the access token's lifetime to refresh at
const STORAGE_KEY = "monitor.session";
const CLOSE_AUTH_FAILED = 4001; // bad, expired or revoked token
const CLOSE_FORBIDDEN = 4003; // the user may not watch this host

const MESSAGES = {
  wrongPassword: "Wrong username or password.",
  unreachable: "Cannot reach the server; check the connection and try again.",
  expired: "Your session has expired; log in again.",
  refused: "The server no longer accepts your session; log in again.",
  forbidden: "This account may not watch this host; log in as another user.",
  loggedOut: "You have logged out.",
};

// ---------------------------------------------------------------- formatting

const BYTE_UNITS = ["B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"];

/** Bytes in binary units for people: "512 B", "9.77 KiB", "16.0 GiB". */
export function formatBytes(bytes, { trim = false } = {}) {
  if (bytes == null || !Number.isFinite(bytes)) return "—";
  let value = Math.abs(bytes);
  let unit = 0;
  while (value >= 1024 && unit < BYTE_UNITS.length - 1) {
    value /= 1024;
    unit += 1;
  }
  const digits = unit === 0 ? 0 : value < 10 ? 2 : value < 100 ? 1 : 0;
  let text = (Math.sign(bytes) * value).toFixed(digits);
  if (trim && text.includes(".")) text = text.replace(/\.?0+$/, "");
  return `${text} ${BYTE_UNITS[unit]}`;
}

/** A rate in bytes per second: "1.50 MiB/s". */
export function formatRate(bytesPerSecond, options) {
  return bytesPerSecond == null ? "—" : `${formatBytes(bytesPerSecond, options)}/s`;
}

/** A percentage with one decimal: "45.2%". */
export function formatPercent(percent, digits = 1) {
  if (percent == null || !Number.isFinite(percent)) return "—";
  return `${percent.toFixed(digits)}%`;
}

/** A Unix time in seconds as the local wall-clock time: "14:30:05" (or "14:30"). */
export function formatClock(seconds, { withSeconds = true } = {}) {
  if (seconds == null) return "—";
  const parts = { hour: "2-digit", minute: "2-digit", hourCycle: "h23" };
  if (withSeconds) parts.second = "2-digit";
  return new Date(seconds * 1000).toLocaleTimeString([], parts);
}

// Tick steps for rate axes: 1, 2, 5, 10, 25... of each binary unit, so ticks read
// "256 KiB/s", "1 MiB/s" rather than "195.3 KiB/s".
const RATE_STEPS = [1, 2, 5, 10, 25, 50, 100, 250, 500].flatMap((step) =>
  [0, 1, 2, 3, 4].map((power) => step * 1024 ** power),
).sort((a, b) => a - b);

// ---------------------------------------------------------------- the page

const $ = (id) => document.getElementById(id);

const view = {
  login: $("login"),
  loginForm: $("login-form"),
  loginMessage: $("login-message"),
  loginButton: document.querySelector("#login-form button"),
  dashboard: $("dashboard"),
  status: $("status"),
  connection: $("connection"),
  lastUpdate: $("last-update"),
  logout: $("logout"),
  cores: $("cores"),
  partitions: $("partitions"),
  diskNote: $("disk-note"),
  hostName: $("host-name"),
};

function showLogin(message, kind = "error") {
  view.dashboard.hidden = true;
  view.status.hidden = true;
  view.login.hidden = false;
  view.loginMessage.hidden = !message;
  view.loginMessage.textContent = message || "";
  view.loginMessage.dataset.kind = kind;
  const { username, password } = view.loginForm.elements;
  password.value = "";
  (username.value ? password : username).focus();
}

function showDashboard() {
  view.login.hidden = true;
  view.dashboard.hidden = false;
  view.status.hidden = false;
}

function setState(state) {
  const labels = {
    connecting: "Connecting…",
    live: "Live",
    reconnecting: "Reconnecting…",
    stale: "Stale: no update",
  };
  if (view.connection.dataset.state === state) return;
  view.connection.dataset.state = state;
  view.connection.textContent = labels[state];
}

function setText(id, text) {
  const element = $(id);
  if (element.textContent !== text) element.textContent = text;
}

// ---------------------------------------------------------------- the session

const app = {
  session: null, // {access, refresh, accessLifetime, accessExpiresAt (ms, this clock)}
  generation: 0, // bumped at logout, so late answers of an old session are ignored
  refreshing: null,
  connecting: false, // history being loaded before the socket opens
  socket: null,
  attempt: 0,
  interval: 5, // seconds between snapshots, from the history endpoint
  lastSnapshotAt: 0, // ms (this clock) when the last snapshot came
  openedAt: 0, // ms when the socket opened (or began to)
  lastMessageAt: 0, // ms when the socket last said anything (a snapshot, a pong)
  lastPingAt: 0,
  historyLoaded: false,
  refusedBefore: false, // the last socket was refused (4001) with no snapshot since
  timers: { refresh: 0, reconnect: 0 },
};

class SessionEnded extends Error {}

class HttpError extends Error {
  constructor(url, status) {
    super(`${url} answered HTTP ${status}`);
    this.status = status;
  }
}

/** The JSON payload of a JWT (not verified: the server does that). */
function decodeToken(token) {
  const part = token.split(".")[1].replace(/-/g, "+").replace(/_/g, "/");
  return JSON.parse(atob(part.padEnd(part.length + ((4 - (part.length % 4)) % 4), "=")));
}

/** How long a token just received stays valid, in ms (immune to clock skew). */
function lifetimeOf(access) {
  const { exp, iat } = decodeToken(access);
  // Both claims are whole seconds: the token may be up to 1 s older than `iat`.
  const seconds = iat ? exp - iat - 1 : exp - Date.now() / 1000;
  return Math.max(1, seconds) * 1000;
}

function saveSession(access, refresh) {
  const accessLifetime = lifetimeOf(access);
  const accessExpiresAt = Date.now() + accessLifetime;
  app.session = { access, refresh, accessLifetime, accessExpiresAt };
  sessionStorage.setItem(STORAGE_KEY, JSON.stringify(app.session));
}

function loadSession() {
  try {
    const session = JSON.parse(sessionStorage.getItem(STORAGE_KEY));
    return session?.access && session?.refresh ? session : null;
  } catch {
    return null;
  }
}

async function postJson(url, body, options = {}) {
  return fetch(url, {
    ...options,
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify(body),
  });
}

async function logIn(event) {
  event.preventDefault();
  const form = view.loginForm.elements;
  view.loginButton.disabled = true;
  try {
    const response = await postJson("/api/auth/login", {
      username: form.username.value,
      password: form.password.value,
    });
    if (response.ok) {
      const { access, refresh } = await response.json();
      saveSession(access, refresh);
      form.password.value = "";
      startSession();
    } else if (response.status === 401 || response.status === 400) {
      showLogin(MESSAGES.wrongPassword);
    } else if (response.status === 429) {
      const wait = Number(response.headers.get("Retry-After"));
      const when = wait > 0 ? `in ${Math.ceil(wait)} s` : "later";
      showLogin(`Too many login attempts; try again ${when}.`);
    } else {
      showLogin(`Login failed (HTTP ${response.status}); try again.`);
    }
  } catch {
    showLogin(MESSAGES.unreachable);
  } finally {
    view.loginButton.disabled = false;
  }
}

function startSession() {
  showDashboard();
  setState("connecting");
  scheduleRefresh();
  connect();
}

/** Forget the tokens, stop everything and show the login form with a message. */
function endSession(message, kind = "error") {
  app.generation += 1;
  app.session = null;
  sessionStorage.removeItem(STORAGE_KEY);
  clearTimeout(app.timers.refresh);
  clearTimeout(app.timers.reconnect);
  dropSocket();
  app.attempt = 0;
  app.connecting = false;
  app.historyLoaded = false;
  app.refusedBefore = false;
  app.lastSnapshotAt = app.openedAt = 0;
  clearData();
  showLogin(message, kind);
}

/** Log out: the server blacklists the refresh token, and this page forgets both. */
function logOut() {
  const refresh = app.session?.refresh;
  endSession(MESSAGES.loggedOut, "info");
  // Best effort: the page forgets the tokens whether or not the server answers.
  postJson("/api/auth/logout", { refresh }, { keepalive: true }).catch(() => {});
}

function scheduleRefresh() {
  clearTimeout(app.timers.refresh);
  const remaining = app.session.accessExpiresAt - Date.now();
  const delay = Math.max(1000, REFRESH_AT * remaining);
  app.timers.refresh = setTimeout(() => refreshAccess().catch(retryRefresh), delay);
}

function retryRefresh() {
  // The server could not be reached: try again soon, the token may still be valid.
  if (!app.session) return;
  clearTimeout(app.timers.refresh);
  app.timers.refresh = setTimeout(() => refreshAccess().catch(retryRefresh), 5000);
}

/** Get a new access token; true if we have one, false if the session ended. */
function refreshAccess() {
  if (!app.refreshing) {
    const generation = app.generation;
    app.refreshing = (async () => {
      const response = await postJson("/api/auth/refresh", { refresh: app.session.refresh });
      if (generation !== app.generation) return false;
      if (response.status === 401 || response.status === 400) {
        endSession(MESSAGES.expired);
        return false;
      }
      if (!response.ok) throw new Error(`refresh answered HTTP ${response.status}`);
      const { access, refresh } = await response.json();
      if (generation !== app.generation) return false;
      saveSession(access, refresh || app.session.refresh);
      scheduleRefresh();
      renewSocket();
      return true;
    })().finally(() => {
      app.refreshing = null;
    });
  }
  return app.refreshing;
}

/** GET with the access token, refreshing it once if the server says it expired. */
async function authorizedGet(url) {
  const get = () =>
    fetch(url, { headers: { Authorization: `Bearer ${app.session.access}` } });
  let response = await get();
  if (response.status === 401) {
    if (!(await refreshAccess())) throw new SessionEnded();
    response = await get();
    if (response.status === 401) {
      endSession(MESSAGES.refused);
      throw new SessionEnded();
    }
  }
  if (response.status === 403) {
    // Signed in, but not allowed to watch (METRICS_REQUIRED_PERMISSION).
    endSession(MESSAGES.forbidden);
    throw new SessionEnded();
  }
  if (!response.ok) throw new HttpError(url, response.status);
  return response.json();
}

// ---------------------------------------------------------------- the stream

/** Load history (all of it at first, else the gap), then open the socket. */
async function connect() {
  const generation = app.generation;
  clearTimeout(app.timers.reconnect);
  app.connecting = true;
  try {
    if (refreshIsDue() && !(await refreshAccess())) return;
    const gap = (Date.now() - app.lastSnapshotAt) / 1000 + 3 * app.interval;
    const seconds = app.historyLoaded
      ? Math.ceil(Math.min(HISTORY_SECONDS, gap))
      : HISTORY_SECONDS;
    const history = await loadHistory(seconds);
    if (generation !== app.generation) return;
    app.interval = history.interval;
    if (history.host) setText("host-name", history.host);
    view.hostName.hidden = !view.hostName.textContent;
    addSnapshots(history.snapshots);
    if (!app.historyLoaded) {
      app.historyLoaded = true;
      view.dashboard.dataset.historyPoints = String(data.rows.length);
    }
    openSocket();
  } catch (error) {
    if (error instanceof SessionEnded || generation !== app.generation) return;
    scheduleReconnect();
  } finally {
    if (generation === app.generation) app.connecting = false;
  }
}

/** The snapshots of the last `seconds`, or of the last minute if the server keeps less. */
async function loadHistory(seconds) {
  try {
    return await authorizedGet(`/api/metrics/history?seconds=${seconds}`);
  } catch (error) {
    // 400: more than the server keeps (METRICS_HISTORY_SECONDS, 60 at the least).
    if (!(error instanceof HttpError && error.status === 400) || seconds <= 60) throw error;
    return authorizedGet("/api/metrics/history?seconds=60");
  }
}

function refreshIsDue() {
  const { accessExpiresAt, accessLifetime } = app.session;
  return accessExpiresAt - Date.now() < (1 - REFRESH_AT) * accessLifetime;
}

/** Hand the open socket the new access token, or the server closes it at expiry. */
function renewSocket() {
  if (app.socket?.readyState === WebSocket.OPEN) {
    app.socket.send(JSON.stringify({ type: "auth", token: app.session.access }));
  }
}

function openSocket() {
  const scheme = location.protocol === "https:" ? "wss" : "ws";
  // The token goes as a subprotocol, not in the URL, which servers and proxies log.
  const url = `${scheme}://${location.host}/api/ws/metrics`;
  const socket = new WebSocket(url, ["bearer", app.session.access]);
  app.socket = socket;
  app.openedAt = Date.now(); // the handshake started; onopen resets it
  socket.onopen = () => {
    app.openedAt = app.lastMessageAt = Date.now();
  };
  socket.onmessage = (event) => {
    app.lastMessageAt = Date.now();
    const message = JSON.parse(event.data);
    if (message.type !== "metrics") return;
    app.lastSnapshotAt = app.lastMessageAt;
    app.attempt = 0;
    app.refusedBefore = false;
    setState("live");
    addSnapshots([message]);
  };
  socket.onclose = (event) => {
    if (app.socket !== socket) return;
    app.socket = null;
    if (event.code === CLOSE_FORBIDDEN) endSession(MESSAGES.forbidden);
    else if (event.code === CLOSE_AUTH_FAILED) retryRefused();
    else scheduleReconnect();
  };
}

/** After a 4001, try once more with a new access token (ours may just have expired). */
async function retryRefused() {
  if (app.refusedBefore) {
    endSession(MESSAGES.refused);
    return;
  }
  app.refusedBefore = true;
  try {
    if (await refreshAccess()) connect();
  } catch {
    scheduleReconnect(); // the server is unreachable: keep trying
  }
}

function dropSocket() {
  const socket = app.socket;
  app.socket = null;
  if (socket) {
    socket.onclose = socket.onmessage = socket.onopen = null;
    socket.close();
  }
}

/** Reconnect after a jittered, exponentially growing delay. */
function scheduleReconnect() {
  setState("reconnecting");
  clearTimeout(app.timers.reconnect);
  const ceiling = Math.min(BACKOFF_MAX, BACKOFF_FIRST * 2 ** app.attempt);
  const delay = ceiling / 2 + (Math.random() * ceiling) / 2;
  app.attempt += 1;
  app.timers.reconnect = setTimeout(connect, delay * 1000);
}

function reconnectNow() {
  if (app.session && !app.socket && !app.connecting) {
    app.attempt = 0;
    connect();
  }
}

/** Once a second: mark the stream stale, ping a quiet socket, drop a dead one. */
function watch() {
  const socket = app.socket;
  const now = Date.now();
  if (socket?.readyState === WebSocket.CONNECTING && now - app.openedAt > OPEN_WITHIN) {
    dropSocket(); // a handshake lost in the network
    scheduleReconnect();
  }
  if (socket?.readyState !== WebSocket.OPEN) return;
  const waited = now - Math.max(app.lastSnapshotAt, app.openedAt);
  if (waited > 2 * app.interval * 1000) setState("stale");
  const pingAfter = Math.min(PING_EVERY, 2 * app.interval * 1000);
  const quiet = now - app.lastMessageAt;
  if (quiet > pingAfter + PONG_WITHIN) {
    dropSocket(); // no answer to our ping: the network is gone without a close
    scheduleReconnect();
  } else if (quiet > pingAfter && now - app.lastPingAt > pingAfter) {
    app.lastPingAt = now;
    socket.send(JSON.stringify({ type: "ping" }));
  }
}

// ---------------------------------------------------------------- the data

const data = { rows: [], latest: null };

function rowOf(message) {
  const { cpu, memory, network, disk } = message.data;
  const io = disk.io || {};
  return {
    t: Date.parse(message.timestamp) / 1000,
    cpu: cpu.usage_percent,
    cores: cpu.per_core || [],
    memory: memory.usage_percent,
    swap: memory.swap_percent,
    sent: network.bytes_sent_per_sec,
    recv: network.bytes_recv_per_sec,
    read: io.read_bytes_per_sec ?? null,
    write: io.write_bytes_per_sec ?? null,
  };
}

/** Merge snapshots in time order (one row per timestamp), keep a bounded window. */
function addSnapshots(messages) {
  const rows = data.rows;
  for (const message of messages) {
    const row = rowOf(message);
    let index = rows.length;
    while (index > 0 && rows[index - 1].t > row.t) index -= 1;
    if (index > 0 && rows[index - 1].t === row.t) rows[index - 1] = row;
    else rows.splice(index, 0, row);
    if (!data.latest || row.t >= rowOf(data.latest).t) data.latest = message;
  }
  if (!rows.length) return;
  const oldest = rows[rows.length - 1].t - HISTORY_SECONDS;
  let drop = 0;
  while (drop < rows.length && rows[drop].t < oldest) drop += 1;
  rows.splice(0, Math.max(drop, rows.length - MAX_POINTS));
  render();
}

function clearData() {
  data.rows = [];
  data.latest = null;
  charts.destroy();
  delete view.dashboard.dataset.historyPoints;
  view.dashboard.dataset.points = "0";
}

// ---------------------------------------------------------------- rendering

function render() {
  const message = data.latest;
  if (!message || view.dashboard.hidden) return;
  const { cpu, memory, network, disk } = message.data;
  const io = disk.io || {};
  const time = Date.parse(message.timestamp) / 1000;
  view.lastUpdate.dateTime = message.timestamp;
  view.lastUpdate.title = new Date(time * 1000).toString();
  setText("last-update", formatClock(time));

  setText("value-cpu", formatPercent(cpu.usage_percent));
  const [user, system] = [cpu.user, cpu.system].map((v) => formatPercent(v, 0));
  setText("detail-cpu", `user ${user} · sys ${system}`);
  const load = cpu.load_avg?.map((v) => v.toFixed(2)).join(" ");
  setText("detail-load", load ? `load ${load}` : "");
  setText("value-memory", formatPercent(memory.usage_percent));
  const used = formatBytes(memory.used_bytes);
  setText("detail-memory", `${used} of ${formatBytes(memory.total_bytes)}`);
  setText("detail-available", `${formatBytes(memory.available_bytes)} available`);
  setText("value-swap", formatPercent(memory.swap_percent));
  setText("value-sent", formatRate(network.bytes_sent_per_sec));
  setText("value-recv", formatRate(network.bytes_recv_per_sec));
  setText("value-read", formatRate(io.read_bytes_per_sec));
  setText("value-write", formatRate(io.write_bytes_per_sec));
  view.diskNote.hidden = io.read_bytes_per_sec != null;

  renderCores(cpu.per_core || []);
  renderPartitions(disk.partitions || {});
  charts.update(data.rows);
  const rows = data.rows;
  Object.assign(view.dashboard.dataset, {
    points: String(rows.length),
    first: String(rows[0].t),
    last: String(rows[rows.length - 1].t),
  });
}

function renderCores(perCore) {
  const items = view.cores.children;
  while (items.length > perCore.length) items[items.length - 1].remove();
  while (items.length < perCore.length) {
    const item = document.createElement("li");
    item.append(document.createElement("span"), document.createElement("b"));
    item.firstChild.textContent = `core ${items.length}`;
    view.cores.append(item);
  }
  perCore.forEach((percent, index) => {
    const value = items[index].lastChild;
    const text = formatPercent(percent, 0);
    if (value.textContent !== text) value.textContent = text;
  });
}

function usageLevel(percent) {
  return percent >= 90 ? "high" : percent >= 75 ? "warn" : "ok";
}

function cell(text, className) {
  const td = document.createElement("td");
  td.textContent = text;
  if (className) td.className = className;
  return td;
}

function renderPartitions(partitions) {
  const rows = Object.entries(partitions)
    .sort(([a], [b]) => a.localeCompare(b))
    .map(([mountpoint, part]) => {
      const tr = document.createElement("tr");
      const bar = document.createElement("div");
      bar.className = "bar";
      bar.dataset.level = usageLevel(part.usage_percent);
      bar.setAttribute("role", "meter");
      bar.setAttribute("aria-valuemin", "0");
      bar.setAttribute("aria-valuemax", "100");
      bar.setAttribute("aria-valuenow", String(part.usage_percent));
      bar.setAttribute("aria-label", `${mountpoint} usage`);
      const fill = document.createElement("span");
      fill.style.width = `${Math.min(100, Math.max(0, part.usage_percent))}%`;
      bar.append(fill);
      const usage = cell("", "usage");
      const wrap = document.createElement("div");
      wrap.append(bar, document.createTextNode(formatPercent(part.usage_percent)));
      usage.append(wrap);
      tr.append(
        cell(mountpoint, "mount"),
        cell(part.device, "device"),
        cell(part.fstype, "fstype"),
        cell(formatBytes(part.used_bytes), "num"),
        cell(formatBytes(part.free_bytes), "num free"),
        cell(formatBytes(part.total_bytes), "num size"),
        usage,
      );
      return tr;
    });
  if (!rows.length) {
    const tr = document.createElement("tr");
    const td = cell("No readable partitions.", "empty");
    td.colSpan = 7;
    tr.append(td);
    rows.push(tr);
  }
  view.partitions.replaceChildren(...rows);
}

// ---------------------------------------------------------------- charts

const percentAxis = { kind: "percent", format: (v) => formatPercent(v) };
const rateAxis = { kind: "rate", format: (v) => formatRate(v) };

/** What each chart draws: its series (colours are CSS variables) and their values. */
function chartSpecs(cores) {
  const coreIndexes = [...Array(cores).keys()];
  return {
    cpu: {
      axis: percentAxis,
      series: [
        { label: "Total", color: "--series-cpu", width: 2 },
        ...coreIndexes.map((i) => ({ label: `Core ${i}`, color: "--series-core", width: 1 })),
      ],
      columns: (rows) => [
        rows.map((r) => r.cpu),
        ...coreIndexes.map((i) => rows.map((r) => r.cores[i] ?? null)),
      ],
    },
    memory: {
      axis: percentAxis,
      series: [
        { label: "Memory", color: "--series-memory", width: 2 },
        { label: "Swap", color: "--series-swap", width: 2 },
      ],
      columns: (rows) => [rows.map((r) => r.memory), rows.map((r) => r.swap)],
    },
    network: {
      axis: rateAxis,
      series: [
        { label: "Sent", color: "--series-sent", width: 2 },
        { label: "Received", color: "--series-recv", width: 2 },
      ],
      columns: (rows) => [rows.map((r) => r.sent), rows.map((r) => r.recv)],
    },
    disk: {
      axis: rateAxis,
      series: [
        { label: "Read", color: "--series-read", width: 2 },
        { label: "Write", color: "--series-write", width: 2 },
      ],
      columns: (rows) => [rows.map((r) => r.read), rows.map((r) => r.write)],
    },
  };
}

function chartHeight(width) {
  return Math.round(Math.min(220, Math.max(140, width * 0.42)));
}

/** Indexes of values with no neighbour to draw a line to: they get a dot instead. */
function isolatedPoints(plot, seriesIndex) {
  const values = plot.data[seriesIndex];
  const found = [];
  values.forEach((value, i) => {
    if (value != null && values[i - 1] == null && values[i + 1] == null) found.push(i);
  });
  return found;
}

/** Out of the chart, its legend shows the latest values (over it, the hovered ones). */
function showLatestWhenIdle(plot) {
  const last = plot.data[0].length - 1;
  if (plot.cursor.idx == null && last >= 0) plot.setLegend({ idx: last }, false);
}

function chartOptions(spec, width) {
  const style = getComputedStyle(document.documentElement);
  const color = (name) => style.getPropertyValue(name).trim();
  const axisLines = { stroke: color("--grid"), width: 1 };
  const timeAxis = {
    stroke: color("--muted"),
    grid: axisLines,
    ticks: axisLines,
    space: 70,
    values: (u, splits, axis, space, step) =>
      splits.map((t) => formatClock(t, { withSeconds: step < 60 })),
  };
  const valueAxis = {
    stroke: color("--muted"),
    grid: axisLines,
    ticks: axisLines,
    size: spec.axis.kind === "rate" ? 80 : 50,
    values: (u, splits) =>
      splits.map((v) => (spec.axis.kind === "rate" ? formatRate(v, { trim: true }) : `${v}%`)),
  };
  if (spec.axis.kind === "rate") valueAxis.incrs = RATE_STEPS;
  const yScale =
    spec.axis.kind === "percent"
      ? { range: [0, 100] }
      : { range: (u, min, max) => [0, max > 0 ? max * 1.1 : 1024] };
  return {
    width,
    height: chartHeight(width),
    cursor: { drag: { x: false, y: false, setScale: false } },
    legend: { live: true },
    scales: { x: { time: true }, y: yScale },
    axes: [timeAxis, valueAxis],
    series: [
      { label: "Time", value: (u, t) => formatClock(t) },
      ...spec.series.map((s) => ({
        label: s.label,
        stroke: color(s.color),
        width: s.width,
        points: { show: true, filter: isolatedPoints, fill: color(s.color) },
        value: (u, v) => spec.axis.format(v),
      })),
    ],
    hooks: { setCursor: [showLatestWhenIdle], setData: [showLatestWhenIdle] },
  };
}

const EMPTY_ROW = {
  cpu: null,
  cores: [],
  memory: null,
  swap: null,
  sent: null,
  recv: null,
  read: null,
  write: null,
};

/** Rows with an empty one wherever snapshots are missing, so lines break there. */
function withGaps(rows, interval) {
  const points = [];
  rows.forEach((row, index) => {
    const previous = rows[index - 1];
    if (previous && row.t - previous.t > 2 * interval) {
      points.push({ ...EMPTY_ROW, t: previous.t + interval });
    }
    points.push(row);
  });
  return points;
}

const charts = {
  plots: {}, // chart name -> uPlot
  cores: -1,
  observer: null,

  update(rows) {
    const cores = rows.length ? rows[rows.length - 1].cores.length : 0;
    if (cores !== this.cores || !Object.keys(this.plots).length) this.build(cores);
    const points = withGaps(rows, app.interval);
    const times = points.map((r) => r.t);
    for (const [name, spec] of Object.entries(chartSpecs(cores))) {
      this.plots[name].setData([times, ...spec.columns(points)]);
    }
  },

  build(cores) {
    this.destroy();
    this.cores = cores;
    this.observer = new ResizeObserver(() => this.resize());
    for (const [name, spec] of Object.entries(chartSpecs(cores))) {
      const mount = document.querySelector(`#chart-${name} .plot`);
      const width = Math.max(200, mount.clientWidth);
      this.plots[name] = new uPlot(chartOptions(spec, width), null, mount);
      this.observer.observe(mount);
    }
  },

  resize() {
    for (const plot of Object.values(this.plots)) {
      const width = Math.max(200, plot.root.parentElement.clientWidth);
      if (width !== plot.width) plot.setSize({ width, height: chartHeight(width) });
    }
  },

  destroy() {
    this.observer?.disconnect();
    for (const plot of Object.values(this.plots)) plot.destroy();
    this.plots = {};
    this.cores = -1;
  },

  rebuild() {
    if (Object.keys(this.plots).length) {
      this.destroy();
      this.update(data.rows);
    }
  },
};

// ---------------------------------------------------------------- start

view.loginForm.addEventListener("submit", logIn);
view.logout.addEventListener("click", logOut);
window.addEventListener("online", reconnectNow);
matchMedia("(prefers-color-scheme: dark)").addEventListener("change", () => charts.rebuild());
setInterval(watch, 1000);

app.session = loadSession();
if (app.session) startSession();
else showLogin();
