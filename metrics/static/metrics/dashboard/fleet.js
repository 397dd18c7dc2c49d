// Fleet: what the overview keeps of the fleet stream. The hosts of the latest frame,
// each host's CPU over the last ten minutes (its history, then each frame's figure),
// the order of the cards and the filter. No page state: cards.js draws it.

import { HISTORY_SECONDS } from "./snapshots.js";

const BUSY_STEP = 10; // percentage points: hosts this close in busyness keep name order
const MAX_POINTS = 2000; // hard bound on one host's kept CPU points

const kept = {
  hosts: [], // the latest frame's entries, as the server sent them
  time: 0, // the latest frame's timestamp (s, the server's clock)
  receivedAt: 0, // ms (this clock) when it came
  interval: 5, // seconds between frames
  cpu: new Map(), // host -> [{t (s), value (CPU %)}], oldest first
};

/** Keep a fleet frame; the names of the hosts it brings that were not known before. */
export function add(frame, interval) {
  kept.time = Date.parse(frame.timestamp) / 1000;
  kept.receivedAt = Date.now();
  kept.interval = interval;
  kept.hosts = Array.isArray(frame.hosts) ? frame.hosts : [];
  const names = new Set(kept.hosts.map((entry) => entry.host));
  for (const name of kept.cpu.keys()) if (!names.has(name)) kept.cpu.delete(name);
  const added = [...names].filter((name) => !kept.cpu.has(name));
  for (const name of added) kept.cpu.set(name, []);
  for (const entry of kept.hosts) {
    // The figures are the host's latest snapshot's, received at `last_seen`: a new
    // point only when that moved on (an offline host's figures stay as they were).
    if (entry.online && entry.last_seen && entry.cpu_percent != null) {
      const t = Date.parse(entry.last_seen) / 1000;
      const points = kept.cpu.get(entry.host);
      if (!points.length || t > points.at(-1).t + kept.interval / 2) {
        addPoints(entry.host, [{ t, value: entry.cpu_percent }]);
      }
    }
  }
  return added;
}

/** A host's history answer, merged into its CPU points (the host may be gone). */
export function addHistory(name, history) {
  if (!kept.cpu.has(name)) return;
  const points = history.snapshots.map((message) => ({
    t: Date.parse(message.timestamp) / 1000,
    value: message.data.cpu.usage_percent,
  }));
  addPoints(name, points);
}

function addPoints(name, added) {
  const byTime = new Map(kept.cpu.get(name).map((point) => [point.t, point]));
  for (const point of added) byTime.set(point.t, point);
  const oldest = kept.time - HISTORY_SECONDS;
  const points = [...byTime.values()].filter((point) => point.t >= oldest);
  points.sort((a, b) => a.t - b.t);
  kept.cpu.set(name, points.slice(-MAX_POINTS));
}

/** Seconds since the last frame came (0 before the first). */
export function secondsSinceFrame() {
  return kept.receivedAt ? (Date.now() - kept.receivedAt) / 1000 : 0;
}

/** The names of the hosts kept. */
export function names() {
  return [...kept.cpu.keys()];
}

export function clear() {
  kept.hosts = [];
  kept.time = kept.receivedAt = 0;
  kept.cpu.clear();
}

/**
 * A host's CPU points of the last ten minutes, the window's ends (s), and the gap
 * beyond which two points are not joined (the host was away): three of its usual
 * steps (a host nobody watches sends every METRICS_IDLE_INTERVAL), or of the frames.
 */
export function cpuSeries(name) {
  const points = kept.cpu.get(name) || [];
  const steps = points.slice(1).map((point, i) => point.t - points[i].t);
  steps.sort((a, b) => a - b);
  const usual = Math.max(kept.interval, steps[Math.floor(steps.length / 2)] || 0);
  return { points, start: kept.time - HISTORY_SECONDS, end: kept.time, maxGap: 3 * usual };
}

/** Seconds since the host was last seen (now, by the server's clock), or null. */
export function secondsSinceSeen(entry) {
  if (!entry.last_seen) return null;
  const sinceFrame = (Date.now() - kept.receivedAt) / 1000;
  return kept.time - Date.parse(entry.last_seen) / 1000 + sinceFrame;
}

/** The busiest of a host's figures: CPU %, memory % or its fullest disk's %. */
function busiest(entry) {
  const figures = [entry.cpu_percent, entry.memory_percent, entry.disk_max_percent];
  const known = figures.filter(Number.isFinite);
  return known.length ? Math.max(...known) : null;
}

function busyStep(entry) {
  const busy = busiest(entry);
  return busy == null ? -1 : Math.floor(busy / BUSY_STEP);
}

/**
 * The hosts in the order people should read them: offline hosts first, then the
 * busiest (CPU, memory or a disk) first in steps of 10 points, then by name. The
 * steps keep two hosts a point apart from swapping places on every frame.
 */
export function ordered() {
  return [...kept.hosts].sort(
    (a, b) =>
      Number(a.online) - Number(b.online) ||
      (a.online ? busyStep(b) - busyStep(a) : 0) ||
      a.host.localeCompare(b.host),
  );
}

/** The hosts whose name contains `text` (any case), only the offline ones if asked. */
export function matching(entries, { text = "", offlineOnly = false } = {}) {
  const wanted = text.trim().toLowerCase();
  return entries.filter(
    (entry) => entry.host.toLowerCase().includes(wanted) && !(offlineOnly && entry.online),
  );
}

/** How many hosts the latest frame has. */
export function count() {
  return kept.hosts.length;
}
