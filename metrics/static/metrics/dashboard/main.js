// The host monitor dashboard: log in, draw the last minutes at once from the history
// endpoint, then follow the live WebSocket stream, reconnecting by itself. The page
// shows the host its URL names (`/hosts/NAME/`), or the server's default host (`/`).
//
// This entry module only wires the others together; each has one job:
//   auth.js        the tokens, log in and out, refresh, the HTTP API (history, hosts)
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
import * as snapshots from "./snapshots.js";
import * as socket from "./socket.js";
import * as view from "./view.js";

function startSession() {
  view.showDashboard();
  view.showHost(pageHost);
  view.setState("connecting");
  auth.scheduleRefresh();
  socket.connect();
}

/**
 * The hosts the server knows: links to their pages when there are several, and
 * whether this page's host is offline. Best effort: without the list, the page
 * simply shows no links.
 */
async function showHosts() {
  let hosts;
  try {
    hosts = await auth.loadHosts();
  } catch {
    return;
  }
  if (!Array.isArray(hosts) || !auth.hasSession()) return;
  const current = pageHost || view.elements.hostName.textContent;
  view.showHosts(hosts, current);
  if (hosts.find((host) => host.name === current)?.online === false) {
    socket.markHostOffline();
  }
}

/** Forget the tokens, stop everything and show the login form with a message. */
function endSession(message, kind = "error", { revoke = false } = {}) {
  auth.forgetSession({ revoke });
  socket.stop();
  snapshots.clear();
  charts.destroy();
  view.clearCounters();
  view.showLogin(message, kind);
}

async function logIn(event) {
  event.preventDefault();
  const { username, password } = view.elements.loginForm.elements;
  view.elements.loginButton.disabled = true;
  try {
    const refusal = await auth.logIn(username.value, password.value);
    if (refusal) {
      view.showLogin(view.loginRefusal(refusal));
    } else {
      password.value = "";
      startSession();
    }
  } catch {
    view.showLogin(view.MESSAGES.unreachable);
  } finally {
    view.elements.loginButton.disabled = false;
  }
}

/** Log out: the server blacklists the refresh token, and this page forgets both. */
function logOut() {
  endSession(view.MESSAGES.loggedOut, "info", { revoke: true });
}

/** The history endpoint's answer: the host's name and the snapshots to draw. */
function showHistory(history, { first }) {
  view.showHost(pageHost || history.host);
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

// The server ended the session (auth.js and socket.js say why): back to the login form.
const sessionEnded = (reason) => endSession(view.MESSAGES[reason]);

auth.setHandlers({ ended: sessionEnded, renewed: socket.renew });
socket.setHandlers({
  state: view.setState,
  history: showHistory,
  snapshot: (message) => addSnapshots([message]),
  host: view.showHostOnline,
  missing: (reason) => view.showMissing(pageHost, reason),
  ended: sessionEnded,
});

view.elements.loginForm.addEventListener("submit", logIn);
view.elements.logout.addEventListener("click", logOut);
window.addEventListener("online", socket.reconnectNow);
matchMedia("(prefers-color-scheme: dark)").addEventListener("change", () =>
  charts.rebuild(snapshots.rows(), socket.snapshotInterval()),
);
setInterval(socket.watch, 1000);

if (auth.restoreSession()) startSession();
else view.showLogin();
