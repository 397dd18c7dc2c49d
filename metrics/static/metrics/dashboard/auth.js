// Auth and API: the session's tokens, logging in and out, refreshing the access token
// ahead of its expiry, the authorized GETs of the HTTP API (the history), and the
// server's own readiness (/readyz). The history is this page's host's (hosts.js),
// unless the caller names another.
// The tokens live in sessionStorage: a reload stays logged in, a closed tab does not.
// This module never touches the page: when the session ends or the access token is
// renewed, it calls the handlers the entry module gave it (setHandlers).

import { pageHost, withHost } from "./hosts.js";

const REFRESH_AT = 0.8; // share of the access token's lifetime to refresh at
const REFRESH_RETRY = 5000; // ms before trying again when the server was unreachable
const STORAGE_KEY = "monitor.session";

/** Thrown once the session has been ended for the caller: it need only stop. */
export class SessionEnded extends Error {}

export class HttpError extends Error {
  constructor(url, status) {
    super(`${url} answered HTTP ${status}`);
    this.status = status;
  }
}

let session = null; // {access, refresh, accessLifetime, accessExpiresAt (ms, this clock)}
let generation = 0; // bumped when the session ends, so late answers of an old one are ignored
let refreshing = null; // the refresh in flight: callers at the same time share it
let refreshTimer = 0;

const handlers = {
  ended: (reason) => {}, // the server ended the session: "expired", "refused", "forbidden"
  renewed: () => {}, // a new access token is in accessToken()
};

/** Say what the page does when the session ends or its access token is renewed. */
export function setHandlers(given) {
  Object.assign(handlers, given);
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
  session = { access, refresh, accessLifetime, accessExpiresAt };
  sessionStorage.setItem(STORAGE_KEY, JSON.stringify(session));
}

/** Take up the session this tab kept (a reload); true if there is one. */
export function restoreSession() {
  try {
    const saved = JSON.parse(sessionStorage.getItem(STORAGE_KEY));
    session = saved?.access && saved?.refresh ? saved : null;
  } catch {
    session = null;
  }
  return session !== null;
}

export function hasSession() {
  return session !== null;
}

export function accessToken() {
  return session.access;
}

async function postJson(url, body, options = {}) {
  return fetch(url, {
    ...options,
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify(body),
  });
}

/**
 * Log in and keep the tokens. Resolves to null on success, else to why the server
 * refused: {reason: "wrongPassword"}, {reason: "throttled", wait (s)} or
 * {reason: "failed", status}. Rejects if the server cannot be reached.
 */
export async function logIn(username, password) {
  const response = await postJson("/api/auth/login", { username, password });
  if (response.ok) {
    const { access, refresh } = await response.json();
    saveSession(access, refresh);
    return null;
  }
  if (response.status === 401 || response.status === 400) return { reason: "wrongPassword" };
  if (response.status === 429) {
    return { reason: "throttled", wait: Number(response.headers.get("Retry-After")) };
  }
  return { reason: "failed", status: response.status };
}

/** Forget the tokens and stop refreshing; `revoke` also logs out at the server. */
export function forgetSession({ revoke = false } = {}) {
  const refresh = session?.refresh;
  generation += 1;
  session = null;
  sessionStorage.removeItem(STORAGE_KEY);
  clearTimeout(refreshTimer);
  if (revoke) {
    // The server blacklists the refresh token. Best effort: the page has forgotten
    // the tokens whether or not the server answers.
    postJson("/api/auth/logout", { refresh }, { keepalive: true }).catch(() => {});
  }
}

/** Refresh the access token at REFRESH_AT of its lifetime. */
export function scheduleRefresh() {
  clearTimeout(refreshTimer);
  const remaining = session.accessExpiresAt - Date.now();
  const delay = Math.max(1000, REFRESH_AT * remaining);
  refreshTimer = setTimeout(() => refreshAccess().catch(retryRefresh), delay);
}

function retryRefresh() {
  // The server could not be reached: try again soon, the token may still be valid.
  if (!session) return;
  clearTimeout(refreshTimer);
  refreshTimer = setTimeout(() => refreshAccess().catch(retryRefresh), REFRESH_RETRY);
}

/** True once the access token is past the point where it should have been refreshed. */
export function refreshIsDue() {
  const { accessExpiresAt, accessLifetime } = session;
  return accessExpiresAt - Date.now() < (1 - REFRESH_AT) * accessLifetime;
}

/** Get a new access token; true if we have one, false if the session ended. */
export function refreshAccess() {
  if (!refreshing) {
    const started = generation;
    refreshing = (async () => {
      const response = await postJson("/api/auth/refresh", { refresh: session.refresh });
      if (started !== generation) return false;
      if (response.status === 401 || response.status === 400) {
        handlers.ended("expired");
        return false;
      }
      if (!response.ok) throw new Error(`refresh answered HTTP ${response.status}`);
      const { access, refresh } = await response.json();
      if (started !== generation) return false;
      saveSession(access, refresh || session.refresh);
      scheduleRefresh();
      handlers.renewed();
      return true;
    })().finally(() => {
      refreshing = null;
    });
  }
  return refreshing;
}

/** GET with the access token, refreshing it once if the server says it expired. */
async function authorizedGet(url) {
  const get = () => fetch(url, { headers: { Authorization: `Bearer ${session.access}` } });
  let response = await get();
  if (response.status === 401) {
    if (!(await refreshAccess())) throw new SessionEnded();
    response = await get();
    if (response.status === 401) {
      handlers.ended("refused");
      throw new SessionEnded();
    }
  }
  if (response.status === 403) {
    // Signed in, but not allowed to watch (METRICS_REQUIRED_PERMISSION).
    handlers.ended("forbidden");
    throw new SessionEnded();
  }
  if (!response.ok) throw new HttpError(url, response.status);
  return response.json();
}

/**
 * A host's snapshots (this page's host's by default) of the last `seconds`, or of
 * the last minute if the server keeps less.
 */
export async function loadHistory(seconds, host = pageHost) {
  const query = (s) => withHost(`seconds=${s}`, host);
  const history = (s) => authorizedGet(`/api/metrics/history?${query(s)}`);
  try {
    return await history(seconds);
  } catch (error) {
    // 400: more than the server keeps (METRICS_HISTORY_SECONDS, 60 at the least).
    if (!(error instanceof HttpError && error.status === 400) || seconds <= 60) throw error;
    return history(60);
  }
}

/**
 * The hosts the user may see, [{name, online, last_seen, interval, clock_skew}], or
 * null if it does not say. Never ends the session: the history speaks for that.
 */
export async function loadHosts() {
  const response = await fetch("/api/hosts", {
    headers: { Authorization: `Bearer ${session.access}` },
  });
  return response.ok ? response.json() : null;
}

/**
 * Which of the server's checks fail, from /readyz: [] when it is ready, else their
 * names ("redis", "database"). Rejects if the server cannot be reached.
 */
export async function failingChecks() {
  const response = await fetch("/readyz", { cache: "no-store" });
  const { checks = {} } = await response.json();
  return Object.keys(checks).filter((name) => checks[name] !== "ok");
}
