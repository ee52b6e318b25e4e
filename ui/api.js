// The API as the dashboard uses it: every request carries the token in the
// Authorization header (never in a URL), and a Graph error becomes an
// ApiError with Graph's code and message.

const TOKEN_KEY = "presenced.token";

/** The token: from the URL fragment (#token=…, then removed from the
 * address bar) or from this tab's session storage. */
export function takeToken() {
  const fragment = new URLSearchParams(location.hash.replace(/^#/, ""));
  const given = fragment.get("token");
  if (given) {
    sessionStorage.setItem(TOKEN_KEY, given.trim());
    history.replaceState(null, "", location.pathname + location.search);
  }
  return sessionStorage.getItem(TOKEN_KEY);
}

/** Keeps `token` for this tab only. */
export function keepToken(token) {
  sessionStorage.setItem(TOKEN_KEY, token.trim());
}

/** Forgets the token. */
export function forgetToken() {
  sessionStorage.removeItem(TOKEN_KEY);
}

/** A failed request: HTTP status, Graph error code and message. */
export class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

/** The API of this origin, called with `token`. */
export class Api {
  constructor(token) {
    this.token = token;
  }

  headers(extra = {}) {
    return { Authorization: `Bearer ${this.token}`, ...extra };
  }

  /** `path` (or a same-origin absolute URL) as a URL of this origin;
   * anything else is refused so the token never leaves the origin. */
  url(path) {
    const url = new URL(path, location.origin);
    if (url.origin !== location.origin) {
      throw new ApiError(0, "invalidLink", `refusing to follow a link to ${url.origin}`);
    }
    return url;
  }

  async request(method, path, body) {
    const init = { method, headers: this.headers(), cache: "no-store" };
    if (body !== undefined) {
      init.headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(body);
    }
    let response;
    try {
      response = await fetch(this.url(path), init);
    } catch (e) {
      if (e instanceof ApiError) throw e;
      throw new ApiError(0, "unreachable", "The server cannot be reached.");
    }
    if (response.status === 204) return null;
    const text = await response.text();
    let json = null;
    try {
      json = text ? JSON.parse(text) : null;
    } catch {
      json = null;
    }
    if (!response.ok) {
      const error = json && json.error ? json.error : {};
      throw new ApiError(
        response.status,
        error.code || `http${response.status}`,
        error.message || `${method} ${path} answered ${response.status}.`,
      );
    }
    return json;
  }

  get(path) {
    return this.request("GET", path);
  }

  post(path, body) {
    return this.request("POST", path, body);
  }

  put(path, body) {
    return this.request("PUT", path, body);
  }

  delete(path) {
    return this.request("DELETE", path);
  }

  /** Every page of a collection, following `@odata.nextLink`. */
  async all(path) {
    const items = [];
    let next = path;
    while (next) {
      const page = await this.get(next);
      items.push(...(page.value || []));
      // The link names this server by its configured origin, which may
      // not be the one the browser reached (a proxy): follow its path and
      // query on this page's origin, where the token is meant to go.
      const link = page["@odata.nextLink"];
      if (link) {
        const url = new URL(link, location.origin);
        next = url.pathname + url.search;
      } else {
        next = null;
      }
    }
    return items;
  }
}
