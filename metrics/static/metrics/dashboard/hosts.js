// Hosts: which host this page shows, from its URL. `/hosts/NAME/` shows NAME; any
// other path (`/`) shows the server's default host, and asks for none. Also the
// URL of each host's page, for the links between them.

// A host name as the server names hosts (`manage.py hosts`): DNS-label-like.
const NAME = /^[a-z0-9][a-z0-9.-]{0,62}$/;
const PAGE = /\/hosts\/([a-z0-9][a-z0-9.-]{0,62})\/$/;

/** The host named by this page's URL, or "" for the default host. */
export const pageHost = location.pathname.match(PAGE)?.[1] ?? "";

/** `host=NAME` for this page's host, to add to a query string; "" for the default. */
export function hostQuery() {
  return pageHost ? `host=${encodeURIComponent(pageHost)}` : "";
}

/** A query string of the parameters given, with this page's host first. */
export function withHost(query) {
  return [hostQuery(), query].filter(Boolean).join("&");
}

/** The page of host `name`, or null if the server sent a name no host can have. */
export function hostPage(name) {
  return NAME.test(name) ? `/hosts/${name}/` : null;
}
