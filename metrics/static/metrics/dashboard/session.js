// Session: what every page does around its stream. The login form and Log out, the
// connection state in the top bar, and the session's life: it starts after a login
// (or with the tokens this tab kept) and ends, back at the login form with a message,
// when the user logs out or the server ends it. The entry module says what its own
// part of the page does when a session starts and ends (run).

import * as auth from "./auth.js";
import * as socket from "./socket.js";

const MESSAGES = {
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

const elements = {
  login: $("login"),
  loginForm: $("login-form"),
  loginMessage: $("login-message"),
  loginButton: document.querySelector("#login-form button"),
  status: $("status"),
  connection: $("connection"),
  logout: $("logout"),
};

// The entry module's part: what it shows when a session starts, clears when it ends.
const page = { start: () => {}, clear: () => {} };

function showLogin(message, kind = "error") {
  elements.status.hidden = true;
  elements.login.hidden = false;
  elements.loginMessage.hidden = !message;
  elements.loginMessage.textContent = message || "";
  elements.loginMessage.dataset.kind = kind;
  const { username, password } = elements.loginForm.elements;
  password.value = "";
  (username.value ? password : username).focus();
}

/** The sentence for a login the server refused (see auth.logIn). */
function loginRefusal({ reason, wait, status }) {
  if (reason === "wrongPassword") return MESSAGES.wrongPassword;
  if (reason === "throttled") {
    const when = wait > 0 ? `in ${Math.ceil(wait)} s` : "later";
    return `Too many login attempts; try again ${when}.`;
  }
  return `Login failed (HTTP ${status}); try again.`;
}

/** The connection state; for "unavailable", what the server cannot reach. */
export function setState(state, failing = []) {
  const { connection } = elements;
  const label = UNAVAILABLE_LABELS[failing[0]] ?? STATE_LABELS[state];
  if (connection.dataset.state === state && connection.textContent === label) return;
  connection.dataset.state = state;
  connection.textContent = label;
}

function start() {
  elements.login.hidden = true;
  elements.status.hidden = false;
  page.start();
  setState("connecting");
  auth.scheduleRefresh();
  socket.connect();
}

/** Forget the tokens, stop everything and show the login form with a message. */
function end(message, kind = "error", { revoke = false } = {}) {
  auth.forgetSession({ revoke });
  socket.stop();
  page.clear();
  showLogin(message, kind);
}

async function logIn(event) {
  event.preventDefault();
  const { username, password } = elements.loginForm.elements;
  elements.loginButton.disabled = true;
  try {
    const refusal = await auth.logIn(username.value, password.value);
    if (refusal) {
      showLogin(loginRefusal(refusal));
    } else {
      password.value = "";
      start();
    }
  } catch {
    showLogin(MESSAGES.unreachable);
  } finally {
    elements.loginButton.disabled = false;
  }
}

/** Log out: the server blacklists the refresh token, and this page forgets both. */
function logOut() {
  end(MESSAGES.loggedOut, "info", { revoke: true });
}

/**
 * Run the page: `start()` shows its part when a session starts (before the stream
 * connects), `clear()` hides and forgets it when the session ends.
 */
export function run({ start: startPage, clear }) {
  Object.assign(page, { start: startPage, clear });
  // The server ended the session (auth.js and socket.js say why): back to the form.
  const ended = (reason) => end(MESSAGES[reason]);
  auth.setHandlers({ ended, renewed: socket.renew });
  socket.setHandlers({ state: setState, ended });
  elements.loginForm.addEventListener("submit", logIn);
  elements.logout.addEventListener("click", logOut);
  window.addEventListener("online", socket.reconnectNow);
  setInterval(socket.watch, 1000);
  if (auth.restoreSession()) start();
  else showLogin();
}
