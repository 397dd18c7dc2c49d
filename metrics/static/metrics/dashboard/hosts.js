// Hosts: which host this page shows, from its URL (`/hosts/NAME/` shows NAME; the
// overview, `/`, none), the query that names a host to the API, and the URL of each
// host's page, for the switcher and the overview's cards.

// A host name as the server names hosts (`manage.py hosts`): DNS-label-like.
const NAME = /^[a-z0-9][a-z0-9.-]{0,62}$/;
const PAGE = /\/hosts\/([a-z0-9][a-z0-9.-]{0,62})\/$/;

/** The host named by this page's URL, or "" (the overview). */
export const pageHost = location.pathname.match(PAGE)?.[1] ?? "";

/** `host=NAME` for a host (this page's by default), to add to a query string. */
export function hostQuery(host = pageHost) {
  return host ? `host=${encodeURIComponent(host)}` : "";
}

/** A query string of the parameters given, with a host (this page's) first. */
export function withHost(query, host = pageHost) {
  return [hostQuery(host), query].filter(Boolean).join("&");
}

/** The page of host `name`, or null if the server sent a name no host can have. */
export function hostPage(name) {
  return NAME.test(name) ? `/hosts/${name}/` : null;
}
