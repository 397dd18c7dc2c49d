// View: what the page shows. The login form or the dashboard, the host and whether it
// is offline, the links to the other hosts, "no such host", the connection state,
// the tiles, the per-core list, the partitions table, and the counters on the
// dashboard's data attributes that the browser tests read. Every string from the
// server goes in as text, never as HTML.

import { formatBytes, formatClock, formatPercent, formatRate } from "./formatting.js";
import { hostPage } from "./hosts.js";

export const MESSAGES = {
  wrongPassword: "Wrong username or password.",
  unreachable: "Cannot reach the server; check the connection and try again.",
  expired: "Your session has expired; log in again.",
  refused: "The server no longer accepts your session; log in again.",
  forbidden: "This account may not watch this host; log in as another user.",
  loggedOut: "You have logged out.",
};

const STATE_LABELS = {
  connecting: "Connecting…",
  live: "Live",
  reconnecting: "Reconnecting…",
  stale: "Stale: no update",
  offline: "Host offline",
  missing: "No host",
  unavailable: "The server cannot reach its data store; retrying…",
};

// What the server cannot reach, by the name /readyz gives its check.
const UNAVAILABLE_LABELS = {
  redis: "The server cannot reach its data store (Redis); retrying…",
  database: "The server cannot reach its database; retrying…",
};

const $ = (id) => document.getElementById(id);

export const elements = {
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
  hostOffline: $("host-offline"),
  hosts: $("hosts"),
  hostList: $("host-list"),
  missing: $("missing"),
  missingMessage: $("missing-message"),
  missingLink: $("missing-link"),
};

export function showLogin(message, kind = "error") {
  elements.dashboard.hidden = true;
  elements.status.hidden = true;
  elements.missing.hidden = true;
  showHost("");
  showHostOnline(true);
  showHosts([], "");
  elements.login.hidden = false;
  elements.loginMessage.hidden = !message;
  elements.loginMessage.textContent = message || "";
  elements.loginMessage.dataset.kind = kind;
  const { username, password } = elements.loginForm.elements;
  password.value = "";
  (username.value ? password : username).focus();
}

/** The sentence for a login the server refused (see auth.logIn). */
export function loginRefusal({ reason, wait, status }) {
  if (reason === "wrongPassword") return MESSAGES.wrongPassword;
  if (reason === "throttled") {
    const when = wait > 0 ? `in ${Math.ceil(wait)} s` : "later";
    return `Too many login attempts; try again ${when}.`;
  }
  return `Login failed (HTTP ${status}); try again.`;
}

export function showDashboard() {
  elements.login.hidden = true;
  elements.missing.hidden = true;
  elements.dashboard.hidden = false;
  elements.status.hidden = false;
}

/** The connection state; for "unavailable", what the server cannot reach. */
export function setState(state, failing = []) {
  const { connection } = elements;
  const label = UNAVAILABLE_LABELS[failing[0]] ?? STATE_LABELS[state];
  if (connection.dataset.state === state && connection.textContent === label) return;
  connection.dataset.state = state;
  connection.textContent = label;
}

function setText(id, text) {
  const element = $(id);
  if (element.textContent !== text) element.textContent = text;
}

const TITLE = document.title;

/**
 * The monitored host's name in the top bar and the title, from the history (so only
 * after a login); none ("") on the login form. A session keeps the name it has if the
 * server sends none.
 */
export function showHost(host) {
  if (host || elements.dashboard.hidden) setText("host-name", host);
  const name = elements.hostName.textContent;
  elements.hostName.hidden = !name;
  document.title = name ? `${name} · ${TITLE}` : TITLE;
}

/** Whether the host is online: an "offline" mark beside its name when it is not. */
export function showHostOnline(online) {
  elements.hostOffline.hidden = online;
  elements.dashboard.dataset.hostOnline = String(online);
}

/**
 * The server has no host `host` (unknown or disabled), or, for the default host
 * (`host` ""), none to show: say so, with a link to the default host's page.
 */
export function showMissing(host, reason) {
  elements.dashboard.hidden = true;
  showHost("");
  showHostOnline(true);
  const said = reason.charAt(0).toUpperCase() + reason.slice(1);
  elements.missingMessage.textContent = host ? `No such host: ${host}` : `${said}.`;
  elements.missingLink.hidden = !host;
  elements.missing.hidden = false;
  elements.lastUpdate.removeAttribute("datetime");
  setText("last-update", "—");
  setState("missing");
}

/**
 * Links to each host's page when the server knows more than one; `current` is the
 * host shown. Hosts: [{name, online}] from GET /api/hosts.
 */
export function showHosts(hosts, current) {
  const items = hosts
    .filter((host) => hostPage(host.name))
    .map((host) => {
      const link = document.createElement("a");
      link.href = hostPage(host.name);
      link.textContent = host.name;
      if (host.name === current) link.setAttribute("aria-current", "page");
      if (host.online === false) {
        link.dataset.offline = "";
        link.title = `${host.name} is offline`;
      }
      const item = document.createElement("li");
      item.append(link);
      return item;
    });
  elements.hostList.replaceChildren(...(items.length > 1 ? items : []));
  elements.hosts.hidden = items.length < 2;
}

/** The latest snapshot in the tiles, the per-core list and the partitions table. */
export function showSnapshot(message) {
  const { cpu, memory, network, disk } = message.data;
  const io = disk.io || {};
  const time = Date.parse(message.timestamp) / 1000;
  elements.lastUpdate.dateTime = message.timestamp;
  elements.lastUpdate.title = new Date(time * 1000).toString();
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
  elements.diskNote.hidden = io.read_bytes_per_sec != null;

  showCores(cpu.per_core || []);
  showPartitions(disk.partitions || {});
}

function showCores(perCore) {
  const items = elements.cores.children;
  while (items.length > perCore.length) items[items.length - 1].remove();
  while (items.length < perCore.length) {
    const item = document.createElement("li");
    item.append(document.createElement("span"), document.createElement("b"));
    item.firstChild.textContent = `core ${items.length}`;
    elements.cores.append(item);
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

/** A usage bar with its percentage (an accessible meter). */
function usageCell(mountpoint, percent) {
  const bar = document.createElement("div");
  bar.className = "bar";
  bar.dataset.level = usageLevel(percent);
  bar.setAttribute("role", "meter");
  bar.setAttribute("aria-valuemin", "0");
  bar.setAttribute("aria-valuemax", "100");
  bar.setAttribute("aria-valuenow", String(percent));
  bar.setAttribute("aria-label", `${mountpoint} usage`);
  const fill = document.createElement("span");
  fill.style.width = `${Math.min(100, Math.max(0, percent))}%`;
  bar.append(fill);
  const usage = cell("", "usage");
  const wrap = document.createElement("div");
  wrap.append(bar, document.createTextNode(formatPercent(percent)));
  usage.append(wrap);
  return usage;
}

function showPartitions(partitions) {
  const rows = Object.entries(partitions)
    .sort(([a], [b]) => a.localeCompare(b))
    .map(([mountpoint, part]) => {
      const tr = document.createElement("tr");
      tr.append(
        cell(mountpoint, "mount"),
        cell(part.device, "device"),
        cell(part.fstype, "fstype"),
        cell(formatBytes(part.used_bytes), "num"),
        cell(formatBytes(part.free_bytes), "num free"),
        cell(formatBytes(part.total_bytes), "num size"),
        usageCell(mountpoint, part.usage_percent),
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
  elements.partitions.replaceChildren(...rows);
}

/** The drawn rows' count and time span, on the dashboard's data attributes. */
export function showCounters(rows) {
  Object.assign(elements.dashboard.dataset, {
    points: String(rows.length),
    first: String(rows[0].t),
    last: String(rows[rows.length - 1].t),
  });
}

/** How many rows the first history answer gave (the tests check it was drawn at once). */
export function showHistoryPoints(count) {
  elements.dashboard.dataset.historyPoints = String(count);
}

export function clearCounters() {
  delete elements.dashboard.dataset.historyPoints;
  elements.dashboard.dataset.points = "0";
}
