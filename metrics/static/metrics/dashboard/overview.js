// The overview, `/`: log in, then follow the fleet stream (`/api/ws/fleet`), one card
// per host the user may see, each with a CPU sparkline of the last ten minutes from
// its history; a filter by name (and offline only), kept in the page's URL.
//
// This entry module only wires the others together; each has one job:
//   session.js     the login form, Log out, the connection state, the session's life
//   socket.js      the live stream: connect, renew, reconnect, ping
//   fleet.js       what the page keeps of the frames, the cards' order and the filter
//   cards.js       the cards
//   sparkline.js   a series as an SVG path
//   auth.js        the tokens and the HTTP API (each host's history)

import * as auth from "./auth.js";
import * as cards from "./cards.js";
import * as fleet from "./fleet.js";
import * as session from "./session.js";
import { HISTORY_SECONDS } from "./snapshots.js";
import * as socket from "./socket.js";

const FLEET_PATH = "/api/ws/fleet";
const FILTER_PARAMS = { text: "q", offlineOnly: "offline" };

let frames = 0;

function startOverview() {
  cards.elements.overview.hidden = false;
}

function clearOverview() {
  frames = 0;
  fleet.clear();
  cards.clear();
}

/** A host's last ten minutes (or `seconds`), for its sparkline. Best effort. */
async function loadHistory(name, seconds = HISTORY_SECONDS) {
  let history;
  try {
    history = await auth.loadHistory(seconds, name);
  } catch {
    return;
  }
  fleet.addHistory(name, history);
  cards.show();
}

function showFrame(frame) {
  const away = fleet.secondsSinceFrame();
  const added = fleet.add(frame, socket.snapshotInterval());
  cards.show();
  frames += 1;
  cards.elements.overview.dataset.frames = String(frames);
  added.forEach((name) => loadHistory(name));
  // Frames missed (the socket reconnected): the gap from each known host's history.
  const gap = away + 3 * socket.snapshotInterval();
  if (away > 3 * socket.snapshotInterval()) {
    const seconds = Math.ceil(Math.min(HISTORY_SECONDS, gap));
    const known = fleet.names().filter((name) => !added.includes(name));
    known.forEach((name) => loadHistory(name, seconds));
  }
}

/** The filter into the page's URL (a reload keeps it), and the cards under it. */
function filterChanged() {
  const { text, offlineOnly } = cards.filter();
  const query = new URLSearchParams();
  if (text) query.set(FILTER_PARAMS.text, text);
  if (offlineOnly) query.set(FILTER_PARAMS.offlineOnly, "1");
  const search = query.size ? `?${query}` : "";
  history.replaceState(null, "", `${location.pathname}${search}`);
  cards.show();
}

function restoreFilter() {
  const query = new URLSearchParams(location.search);
  cards.elements.filter.value = query.get(FILTER_PARAMS.text) ?? "";
  cards.elements.offlineOnly.checked = query.get(FILTER_PARAMS.offlineOnly) === "1";
}

socket.follow(FLEET_PATH, "fleet");
socket.setHandlers({ snapshot: showFrame });
restoreFilter();
cards.elements.filters.addEventListener("input", filterChanged);
cards.elements.filters.addEventListener("submit", (event) => event.preventDefault());
setInterval(cards.showAges, 1000);
session.run({ start: startOverview, clear: clearOverview });
