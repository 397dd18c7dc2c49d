// Cards: the overview's cards, one per host, in the order and under the filter that
// fleet.js gives. Each card links to its host's page and shows its name, online or
// offline ("last seen 3 min ago"), the CPU sparkline of the last ten minutes, CPU %,
// memory %, load, network in and out, and the fullest disk. Every string from the
// server goes in as text, never as HTML.

import * as fleet from "./fleet.js";
import { formatAgo, formatPercent, formatRate, usageLevel } from "./formatting.js";
import { hostPage } from "./hosts.js";
import { HEIGHT, WIDTH, sparklinePath } from "./sparkline.js";

const SVG = "http://www.w3.org/2000/svg";

// Each figure of a card: its label, and its text from a fleet entry.
const FIGURES = [
  ["cpu", "CPU", (entry) => formatPercent(entry.cpu_percent)],
  ["memory", "Memory", (entry) => formatPercent(entry.memory_percent)],
  ["load", "Load", (entry) => (entry.load_1 == null ? "—" : entry.load_1.toFixed(2))],
  ["recv", "Net in", (entry) => formatRate(entry.net_recv_per_sec)],
  ["sent", "Net out", (entry) => formatRate(entry.net_sent_per_sec)],
  ["disk", "Fullest disk", (entry) => formatPercent(entry.disk_max_percent)],
];
// The figures coloured by how full they are.
const LEVELS = { cpu: "cpu_percent", memory: "memory_percent", disk: "disk_max_percent" };

const $ = (id) => document.getElementById(id);

export const elements = {
  overview: $("overview"),
  filters: $("filters"),
  filter: $("filter"),
  offlineOnly: $("offline-only"),
  count: $("host-count"),
  empty: $("no-cards"),
  cards: $("cards"),
};

const made = new Map(); // host -> its card's list item

function element(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined) node.textContent = text;
  return node;
}

function makeCard(name) {
  const link = element("a", "card panel");
  const page = hostPage(name);
  if (page) link.href = page;
  link.dataset.host = name;
  const head = element("div", "card-head");
  head.append(element("h2", "card-name", name), element("span", "card-state"));
  const svg = document.createElementNS(SVG, "svg");
  svg.setAttribute("class", "sparkline");
  svg.setAttribute("viewBox", `0 0 ${WIDTH} ${HEIGHT}`);
  svg.setAttribute("preserveAspectRatio", "none");
  svg.setAttribute("role", "img");
  svg.setAttribute("aria-label", "CPU, last 10 minutes");
  svg.append(document.createElementNS(SVG, "path"));
  const figures = element("dl", "figures");
  for (const [key, label] of FIGURES) {
    const figure = element("div");
    const value = element("dd", "", "—");
    value.dataset.figure = key;
    figure.append(element("dt", "", label), value);
    figures.append(figure);
  }
  link.append(head, element("p", "card-seen"), svg, figures);
  const item = element("li");
  item.append(link);
  return item;
}

function setText(node, text) {
  if (node.textContent !== text) node.textContent = text;
}

function fillCard(item, entry) {
  const link = item.firstChild;
  link.dataset.online = String(entry.online);
  setText(link.querySelector(".card-state"), entry.online ? "online" : "offline");
  for (const [key, , text] of FIGURES) {
    const value = link.querySelector(`[data-figure="${key}"]`);
    setText(value, text(entry));
    const percent = entry[LEVELS[key]];
    if (key in LEVELS && Number.isFinite(percent)) value.dataset.level = usageLevel(percent);
    else delete value.dataset.level;
  }
  const series = fleet.cpuSeries(entry.host);
  const path = link.querySelector(".sparkline path");
  path.setAttribute("d", sparklinePath(series.points, series));
  link.querySelector(".sparkline").dataset.points = String(series.points.length);
  showSeen(link, entry);
}

/** "last seen 3 min ago" on an offline host's card (an online one is being seen). */
function showSeen(link, entry) {
  const seen = link.querySelector(".card-seen");
  seen.hidden = entry.online;
  if (!entry.online) {
    const ago = fleet.secondsSinceSeen(entry);
    setText(seen, ago == null ? "never seen" : `last seen ${formatAgo(ago)}`);
  }
}

/** The filter as the form holds it. */
export function filter() {
  return { text: elements.filter.value, offlineOnly: elements.offlineOnly.checked };
}

/** The cards of the latest frame: ordered, filtered, and counted. */
export function show() {
  const ordered = fleet.ordered();
  const names = new Set(ordered.map((entry) => entry.host));
  for (const [name, item] of made) {
    if (!names.has(name)) {
      item.remove();
      made.delete(name);
    }
  }
  for (const entry of ordered) {
    if (!made.has(entry.host)) made.set(entry.host, makeCard(entry.host));
    fillCard(made.get(entry.host), entry);
  }
  const shown = fleet.matching(ordered, filter()).map((entry) => made.get(entry.host));
  const current = [...elements.cards.children];
  // Moving a card takes the focus off it: move them only when the order changed.
  if (shown.length !== current.length || shown.some((item, i) => item !== current[i])) {
    elements.cards.replaceChildren(...shown);
  }
  const total = fleet.count();
  const hosts = `${total} host${total === 1 ? "" : "s"}`;
  setText(elements.count, shown.length === total ? hosts : `${shown.length} of ${hosts}`);
  elements.empty.hidden = shown.length > 0;
  setText(
    elements.empty,
    total ? "No host matches the filter." : "No hosts to show: you have been given none.",
  );
}

/** The offline cards' "last seen" again (once a second: time goes on). */
export function showAges() {
  for (const entry of fleet.ordered()) {
    const item = made.get(entry.host);
    if (item && !entry.online) showSeen(item.firstChild, entry);
  }
}

export function clear() {
  made.clear();
  elements.cards.replaceChildren();
  elements.overview.hidden = true;
  elements.overview.dataset.frames = "0";
}
