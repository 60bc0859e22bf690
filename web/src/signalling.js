// Minimal client for Mafalda's JSON WebSocket signalling protocol
// (docs/protocol.md, section 1).

export class SignallingError extends Error {
  /** `url`: the node to join through instead (with code `draining`). */
  constructor(method, code, message, url = undefined) {
    super(`${method}: ${code}: ${message}`);
    this.name = 'SignallingError';
    this.method = method;
    this.code = code;
    this.reason = message;
    if (url) this.url = url;
  }
}

/**
 * A join without a usable access token: code `token_required` (the node
 * serves no dev tokens and none was given), `token_fetch_failed`, or
 * `unauthorized` (the node refused the token; the demo page's wording).
 */
export class AccessTokenError extends Error {
  constructor(code, message) {
    super(message);
    this.name = 'AccessTokenError';
    this.code = code;
  }
}

/** The http(s) origin of the node behind a ws(s):// signalling URL. */
export function httpOriginOf(wsUrl) {
  const u = new URL(wsUrl, globalThis.location?.href);
  return `${u.protocol === 'wss:' ? 'https:' : 'http:'}//${u.host}`;
}

/**
 * An access token for `identity` in `room` from `GET /api/dev-token` of the
 * node behind the signalling URL `wsUrl` (a node in `[auth] mode = "dev"`),
 * with these grants (docs/protocol.md). A node that serves no dev tokens
 * answers 404: an AccessTokenError `token_required`, whose message tells the
 * user what to do. Another origin than the page's needs that node to allow
 * it (CORS); the demo page only asks the node that served it.
 */
export async function fetchDevToken(wsUrl, room, identity, grants = ['publish', 'subscribe'], timeoutMs = 5000) {
  const url = new URL('/api/dev-token', httpOriginOf(wsUrl));
  url.searchParams.set('room', room);
  url.searchParams.set('identity', identity);
  for (const g of grants) url.searchParams.append('grant', g);
  let r;
  try {
    r = await fetch(url, { cache: 'no-store', signal: AbortSignal.timeout(timeoutMs) });
  } catch (err) {
    throw new AccessTokenError('token_fetch_failed', `no access token: GET ${url.origin}/api/dev-token: ${err?.message || err}`);
  }
  if (r.status === 404) {
    throw new AccessTokenError('token_required', 'this node needs an access token: add ?token=... to the URL');
  }
  if (!r.ok) {
    const why = (await r.text().catch(() => '')).trim().slice(0, 200);
    throw new AccessTokenError('token_fetch_failed', `no access token: GET ${url.origin}/api/dev-token: HTTP ${r.status}${why ? `: ${why}` : ''}`);
  }
  const body = await r.json().catch(() => ({}));
  if (typeof body.token !== 'string' || !body.token) {
    throw new AccessTokenError('token_fetch_failed', `no access token: GET ${url.origin}/api/dev-token: no token in the answer`);
  }
  return body.token;
}

/**
 * The claims of a JWT (its payload, not verified: only the node can), or
 * null when it does not decode.
 */
export function tokenClaims(token) {
  try {
    const b64 = token.split('.')[1].replace(/-/g, '+').replace(/_/g, '/');
    const bytes = Uint8Array.from(atob(b64.padEnd(Math.ceil(b64.length / 4) * 4, '=')), (c) => c.charCodeAt(0));
    const claims = JSON.parse(new TextDecoder().decode(bytes));
    return claims && typeof claims === 'object' ? claims : null;
  } catch {
    return null;
  }
}

export class Signalling {
  /**
   * @param {string} url ws:// or wss:// URL of the node's /ws endpoint
   * @param {object} handlers { onEvent(name, data), onClose(ev), onProtocolError(msg) }
   */
  constructor(url, handlers) {
    this.url = url;
    this.handlers = handlers;
    this.nextId = 1;
    this.pending = new Map(); // id -> { method, resolve, reject, timer }
    this.ws = null;
    this.closed = false;
  }

  open(timeoutMs = 10000) {
    return new Promise((resolve, reject) => {
      const ws = new WebSocket(this.url);
      this.ws = ws;
      const timer = setTimeout(() => {
        reject(new Error(`WebSocket ${this.url}: open timed out`));
        try { ws.close(); } catch { /* ignore */ }
      }, timeoutMs);
      ws.onopen = () => { clearTimeout(timer); resolve(); };
      ws.onerror = () => {
        clearTimeout(timer);
        reject(new Error(`WebSocket ${this.url}: connection error`));
      };
      ws.onmessage = (ev) => this._onMessage(ev);
      ws.onclose = (ev) => {
        clearTimeout(timer);
        this.closed = true;
        for (const [, p] of this.pending) {
          clearTimeout(p.timer);
          p.reject(new SignallingError(p.method, 'socket_closed',
            `socket closed (code ${ev.code}) before the response`));
        }
        this.pending.clear();
        this.handlers.onClose?.(ev);
      };
    });
  }

  request(method, data, timeoutMs = 15000) {
    if (!this.ws || this.ws.readyState !== WebSocket.OPEN) {
      return Promise.reject(new SignallingError(method, 'socket_closed', 'socket is not open'));
    }
    const id = this.nextId++;
    const msg = data === undefined ? { id, method } : { id, method, data };
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(id);
        reject(new SignallingError(method, 'timeout', `no response after ${timeoutMs} ms`));
      }, timeoutMs);
      this.pending.set(id, { method, resolve, reject, timer });
      this.ws.send(JSON.stringify(msg));
    });
  }

  close() {
    if (this.ws && this.ws.readyState <= WebSocket.OPEN) this.ws.close(1000, 'bye');
  }

  _onMessage(ev) {
    if (typeof ev.data !== 'string') {
      this.handlers.onProtocolError?.('binary frame from server');
      return;
    }
    let msg;
    try {
      msg = JSON.parse(ev.data);
    } catch {
      this.handlers.onProtocolError?.(`unparsable frame: ${ev.data.slice(0, 200)}`);
      return;
    }
    if (msg.response === true) {
      const p = msg.id == null ? undefined : this.pending.get(msg.id);
      if (!p) {
        // id null = the server could not parse one of our requests.
        const err = msg.error ? `${msg.error.code}: ${msg.error.message}` : JSON.stringify(msg);
        this.handlers.onProtocolError?.(`response without a pending request (id ${msg.id}): ${err}`);
        return;
      }
      this.pending.delete(msg.id);
      clearTimeout(p.timer);
      if (msg.ok) {
        p.resolve(msg.data ?? {});
      } else {
        const e = msg.error || {};
        p.reject(new SignallingError(p.method, e.code || 'unknown', e.message || '', e.url));
      }
    } else if (typeof msg.event === 'string') {
      this.handlers.onEvent?.(msg.event, msg.data ?? {});
    } else {
      this.handlers.onProtocolError?.(`unexpected frame: ${ev.data.slice(0, 200)}`);
    }
  }
}
