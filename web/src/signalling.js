// Minimal client for Mafalda's JSON WebSocket signalling protocol
// (docs/protocol.md, section 1).

export class SignallingError extends Error {
  /** `url`: the node to join through instead (with code `draining`). */
  constructor(method, code, message, url = undefined) {
    super(`${method}: ${code}: ${message}`);
    this.name = 'SignallingError';
    this.method = method;
    this.code = code;
    if (url) this.url = url;
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
