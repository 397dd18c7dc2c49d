// The detail page of one host, `/hosts/NAME/`: log in, draw the last minutes at once
// from the history endpoint, then follow the live WebSocket stream, reconnecting by
// itself; a switcher leads to the other hosts' pages. (The overview, `/`, is
// overview.js.)
//
// This entry module only wires the others together; each has one job:
//   auth.js        the tokens, log in and out, refresh, the HTTP API (history, hosts)
//   session.js     the login form, Log out, the connection state, the session's life
//   hosts.js       which host this page shows, from its URL
//   socket.js      the live stream: connect, renew, reconnect, ping
//   snapshots.js   the rows kept for drawing
//   charts.js      the uPlot charts
//   view.js        the page's elements: login form, tiles, tables
//   formatting.js  units and times
// Plain ES modules, no build step. collectstatic names each file by its content hash
// and rewrites the relative specifiers below to those names (core/staticfiles.py), so
// a module's name changes whenever anything it loads changes: a page always runs one
// consistent set of files, however long the browser caches them.

import * as auth from "./auth.js";
import { charts } from "./charts.js";
import { pageHost } from "./hosts.js";
import * as session from "./session.js";
import * as snapshots from "./snapshots.js";
import * as socket from "./socket.js";
import * as view from "./view.js";

function startDashboard() {
  view.showDashboard();
  view.showHost(pageHost);
}

function clearDashboard() {
  snapshots.clear();
  charts.destroy();
  view.clear();
}

/**
 * The hosts the user may see: the switcher when there are several, and whether
 * this page's host is offline. Best effort: without the list, the page simply
 * shows no switcher.
 */
async function showHosts() {
  let hosts;
  try {
    hosts = await auth.loadHosts();
  } catch {
    return;
  }
  if (!Array.isArray(hosts) || !auth.hasSession()) return;
  view.showHosts(hosts, pageHost);
  if (hosts.find((host) => host.name === pageHost)?.online === false) {
    socket.markHostOffline();
  }
}

/** The history endpoint's answer: the snapshots to draw. */
function showHistory(history, { first }) {
  addSnapshots(history.snapshots);
  if (first) {
    view.showHistoryPoints(snapshots.rows().length);
    showHosts();
  }
}

function addSnapshots(messages) {
  if (snapshots.add(messages)) render();
}

function render() {
  const latest = snapshots.latest();
  if (!latest || view.elements.dashboard.hidden) return;
  const rows = snapshots.rows();
  view.showSnapshot(latest);
  charts.update(rows, socket.snapshotInterval());
  view.showCounters(rows);
}

/** The server has no such host, or no longer lets this user see it. */
function showMissing(reason) {
  view.showMissing(pageHost, reason);
  session.setState("missing");
}

socket.setHandlers({
  history: showHistory,
  snapshot: (message) => addSnapshots([message]),
  host: view.showHostOnline,
  missing: showMissing,
});

view.elements.hostSwitcher.addEventListener("change", () => {
  const page = view.chosenHostPage();
  if (page) location.assign(page);
});
matchMedia("(prefers-color-scheme: dark)").addEventListener("change", () =>
  charts.rebuild(snapshots.rows(), socket.snapshotInterval()),
);

session.run({ start: startDashboard, clear: clearDashboard });
