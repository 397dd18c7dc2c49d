// View: what the detail page shows of its host (session.js has the login form and the
// connection state). The dashboard, the host and whether it is offline, the switcher
// to the other hosts, "no such host" or "access withdrawn", the tiles, the per-core
// list, the partitions table, and the counters on the dashboard's data attributes
// that the browser tests read. Every string from the server goes in as text, never
// as HTML.

import {
  formatBytes,
  formatClock,
  formatPercent,
  formatRate,
  usageLevel,
} from "./formatting.js";
import { hostPage } from "./hosts.js";

const $ = (id) => document.getElementById(id);

export const elements = {
  dashboard: $("dashboard"),
  lastUpdate: $("last-update"),
  cores: $("cores"),
  partitions: $("partitions"),
  diskNote: $("disk-note"),
  hostName: $("host-name"),
  hostOffline: $("host-offline"),
  hosts: $("hosts"),
  switcher: $("switcher"),
  hostSwitcher: $("host-switcher"),
  missing: $("missing"),
  missingMessage: $("missing-message"),
};

/** The session ended: nothing of the host stays on the page. */
export function clear() {
  elements.dashboard.hidden = true;
  elements.hosts.hidden = true;
  elements.missing.hidden = true;
  showHost("");
  showHostOnline(true);
  showHosts([], "");
  clearCounters();
}

export function showDashboard() {
  elements.missing.hidden = true;
  elements.dashboard.hidden = false;
  elements.hosts.hidden = false;
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
 * The server has no host `host` (unknown, disabled, or not granted to this user):
 * say so, or, when `reason` is "withdrawn" (the page was showing it), that access
 * to it was withdrawn; with a link to the overview.
 */
export function showMissing(host, reason) {
  elements.dashboard.hidden = true;
  showHost("");
  showHostOnline(true);
  elements.missingMessage.textContent =
    reason === "withdrawn" ? "Your access to this host was withdrawn." : `No such host: ${host}`;
  elements.missing.dataset.reason = reason;
  elements.missing.hidden = false;
  elements.lastUpdate.removeAttribute("datetime");
  setText("last-update", "—");
}

/**
 * The host switcher, when the user may see more than one host: a choice of every
 * host's page, `current` chosen. Hosts: [{name, online}] from GET /api/hosts.
 */
export function showHosts(hosts, current) {
  const options = hosts
    .filter((host) => hostPage(host.name))
    .map((host) => {
      const option = new Option(host.name, host.name, false, host.name === current);
      if (host.online === false) {
        option.textContent = `${host.name} (offline)`;
        option.dataset.offline = "";
      }
      return option;
    });
  elements.hostSwitcher.replaceChildren(...(options.length > 1 ? options : []));
  elements.switcher.hidden = options.length < 2;
}

/** The page of the host chosen in the switcher. */
export function chosenHostPage() {
  return hostPage(elements.hostSwitcher.value);
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

function clearCounters() {
  delete elements.dashboard.dataset.historyPoints;
  elements.dashboard.dataset.points = "0";
}
