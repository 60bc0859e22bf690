// Shared helpers for the browser end-to-end drivers (browser.mjs, aiortc_pair.mjs).
// playwright-core is installed in web/node_modules by scripts/setup-web.sh.

import { createRequire } from 'node:module';
import { readFileSync } from 'node:fs';
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { createInterface } from 'node:readline';

const require = createRequire(new URL('../../web/package.json', import.meta.url));
const { chromium } = require('playwright-core');

export { chromium };

export const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';

export const CHROMIUM_ARGS = [
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  '--disable-extensions',
  '--disable-default-apps',
  '--use-fake-device-for-media-stream',
  '--use-fake-ui-for-media-stream',
  '--autoplay-policy=no-user-gesture-required',
  '--mute-audio',
  '--disable-renderer-backgrounding',
  '--disable-background-timer-throttling',
  '--disable-backgrounding-occluded-windows',
  // The demo page sends 3 simulcast layers (1/4, 1/2, full size). Chromium
  // sends fewer at small sizes (one below 480x270, two below 960x540,
  // dropping the larger ones), which at the tests' 320x240 would leave only
  // the 80x60 layer: lift that limit so that every layer flows.
  '--force-fieldtrials=WebRTC-LegacySimulcastLayerLimit/Disabled/',
];

function isLoopback(host) {
  return host === 'localhost' || host === '[::1]' || /^127\./.test(host);
}

/**
 * Chromium flags for a page served from `baseUrl`. On a loopback address,
 * WebRTC must be allowed to use loopback candidates (a loopback-only
 * namespace has nothing else). Elsewhere (a test host on a private bridge)
 * Chromium offers its non-loopback address by itself, but a plain-HTTP
 * origin that is not localhost is not a secure context, so getUserMedia
 * would be missing: that origin is declared secure for the test, and so
 * are the `others` (base URLs of the nodes the page may move to).
 */
export function chromiumArgs(baseUrl, others = []) {
  const u = new URL(baseUrl);
  if (isLoopback(u.hostname)) return [...CHROMIUM_ARGS, '--allow-loopback-in-peer-connection'];
  const origins = [...new Set([u.origin, ...others.map((o) => new URL(o).origin)])];
  return [...CHROMIUM_ARGS, `--unsafely-treat-insecure-origin-as-secure=${origins.join(',')}`];
}

/** `--urls a,b,c` (or `--url a` when empty) as a list of base URLs. */
export function urlList(urls, url) {
  const list = (urls || '').split(',').map((x) => x.trim().replace(/\/+$/, '')).filter(Boolean);
  return list.length ? list : [url.replace(/\/+$/, '')];
}

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/**
 * Polls `check` (async; returns { ok, detail } or a boolean) every
 * `intervalMs` until it holds, and returns its last result; throws once
 * `timeoutMs` passed, with `what` and the last detail. A check that throws
 * counts as not holding (its error is the detail).
 */
export async function eventually(what, check, { timeoutMs = 30_000, intervalMs = 500 } = {}) {
  const end = Date.now() + timeoutMs;
  let last;
  for (;;) {
    try {
      const r = await check();
      last = typeof r === 'object' && r !== null ? r : { ok: !!r };
    } catch (e) {
      last = { ok: false, detail: `error: ${e?.message || e}` };
    }
    if (last.ok) return last;
    if (Date.now() > end) {
      throw new Error(`not within ${timeoutMs / 1000} s: ${what}; last: ${JSON.stringify(last.detail ?? last)}`);
    }
    await sleep(intervalMs);
  }
}

export function parseArgs(defaults) {
  const out = { ...defaults };
  const argv = process.argv.slice(2);
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (!a.startsWith('--')) throw new Error(`unexpected argument ${a}`);
    const [k, inline] = a.slice(2).split('=', 2);
    const key = k.replace(/-([a-z])/g, (_, c) => c.toUpperCase());
    if (!(key in defaults)) throw new Error(`unknown option --${k}`);
    let v = inline;
    if (v === undefined) {
      if (typeof defaults[key] === 'boolean') v = 'true';
      else v = argv[++i];
    }
    if (typeof defaults[key] === 'number') out[key] = Number(v);
    else if (typeof defaults[key] === 'boolean') out[key] = !['0', 'false', 'no'].includes(v);
    else out[key] = v;
  }
  return out;
}

/**
 * An access token from GET /api/dev-token of the node at `baseUrl` (a node
 * in `[auth] mode = "dev"`), for `identity` in `room` with these grants
 * (none: the node's default, publish + subscribe). Throws with the HTTP
 * status (404: the node serves no dev tokens).
 */
export async function devToken(baseUrl, room, identity, grants = []) {
  const u = new URL('/api/dev-token', baseUrl);
  u.searchParams.set('room', room);
  u.searchParams.set('identity', identity);
  for (const g of grants) u.searchParams.append('grant', g);
  const r = await fetch(u, { signal: AbortSignal.timeout(10_000) });
  if (!r.ok) {
    const e = new Error(`GET ${u}: HTTP ${r.status}: ${(await r.text()).trim().slice(0, 200)}`);
    e.status = r.status;
    throw e;
  }
  return (await r.json()).token;
}

export function randomRoom(prefix) {
  return `${prefix}-${Date.now().toString(36)}-${Math.random().toString(36).slice(2, 6)}`;
}

/** Machine-wide CPU counters, to report how busy the cores were. */
export function cpuSnapshot() {
  const line = readFileSync('/proc/stat', 'utf8').split('\n')[0];
  const f = line.trim().split(/\s+/).slice(1).map(Number);
  const idle = f[3] + (f[4] || 0);
  const total = f.reduce((a, b) => a + b, 0);
  return { idle, total, at: Date.now() };
}

export function cpuBusy(a, b) {
  const dt = b.total - a.total;
  if (dt <= 0) return 0;
  return 1 - (b.idle - a.idle) / dt;
}

/**
 * One browser participant: its own chromium instance (chromium.launch()).
 */
export class Participant {
  constructor(name, opts) {
    this.name = name;
    // { baseUrl, room, res, fps, video, send, origins: [base URLs it may move to],
    //   token (the page's `token=`; default: the page fetches a dev token from its node),
    //   query: { more page parameters }, args: [more Chromium flags] }
    this.opts = opts;
    this.browser = null;
    this.page = null;
    this.console = [];
    this.pageErrors = [];
    this.timings = {};
  }

  url() {
    const q = new URLSearchParams({ room: this.opts.room, name: this.name });
    if (this.opts.res) q.set('res', this.opts.res);
    if (this.opts.fps) q.set('fps', String(this.opts.fps));
    if (this.opts.video === false) q.set('video', '0');
    if (this.opts.send === false) q.set('send', '0');
    q.set('stats', '0');
    // One layer unless a test asks for simulcast (features.mjs does): a
    // receiver that is not a browser (aiortc) follows layer switches badly.
    q.set('simulcast', '0');
    if (this.opts.token) q.set('token', this.opts.token);
    for (const [k, v] of Object.entries(this.opts.query || {})) q.set(k, String(v));
    return `${this.opts.baseUrl}/?${q}`;
  }

  async launch() {
    const t0 = Date.now();
    this.browser = await chromium.launch({
      executablePath: CHROMIUM,
      headless: true,
      args: [...chromiumArgs(this.opts.baseUrl, this.opts.origins || []), ...(this.opts.args || [])],
      timeout: 60_000,
    });
    this.timings.launchMs = Date.now() - t0;
    this.page = await this.browser.newPage({ viewport: { width: 800, height: 600 } });
    this.page.on('console', (m) => {
      this.console.push(`${m.type()}: ${m.text()}`);
      if (this.console.length > 200) this.console.shift();
    });
    this.page.on('pageerror', (e) => this.pageErrors.push(String(e?.stack || e)));
  }

  async join(timeoutMs) {
    const t0 = Date.now();
    await this.page.goto(this.url(), { waitUntil: 'load', timeout: timeoutMs });
    await this.page.waitForFunction(
      () => window.mafalda && (window.mafalda.isReady || ['failed', 'disconnected'].includes(window.mafalda.state)),
      null,
      { timeout: timeoutMs, polling: 250 },
    );
    const st = await this.page.evaluate(() => ({ state: window.mafalda.state, peerId: window.mafalda.peerId, errors: window.mafalda.errors }));
    this.peerId = st.peerId;
    this.timings.joinMs = Date.now() - t0;
    if (st.state !== 'ready') {
      throw new Error(`${this.name}: page state ${st.state}: ${JSON.stringify(st.errors)}`);
    }
  }

  async sample() {
    return this.page.evaluate(async () => ({
      at: Date.now(),
      state: window.mafalda.state,
      peers: window.mafalda.peers(),
      inbound: await window.mafalda.inboundStats(),
      outbound: await window.mafalda.outboundStats(),
      errors: window.mafalda.errors,
    }));
  }

  /**
   * The page's hook fields about where it is (see web/src/app.js), read
   * again if the page is navigating (it moves to rejoin through another
   * node); null if unreadable for `ms`.
   */
  async where(ms = 5000) {
    const end = Date.now() + ms;
    for (;;) {
      try {
        return await this.page.evaluate(() => {
          const m = window.mafalda;
          if (!m) return null;
          return {
            state: m.state, isReady: m.isReady, peerId: m.peerId, rejoins: m.rejoins, via: m.via,
            node: m.node, nodes: m.nodes, servedBy: m.servedBy, url: location.href, errors: m.errors,
          };
        });
      } catch { /* navigating: the old context is gone */ }
      if (Date.now() > end) return null;
      await sleep(250);
    }
  }

  /** Waits until `pred(where)` holds (across the page's own navigations). */
  async waitWhere(pred, timeoutMs, what) {
    const end = Date.now() + timeoutMs;
    let last = null;
    for (;;) {
      last = await this.where(1000);
      if (last && pred(last)) return last;
      if (Date.now() > end) throw new Error(`${this.name}: not within ${timeoutMs / 1000} s: ${what}; last ${JSON.stringify(last)}`);
      await sleep(250);
    }
  }

  async diagnostics() {
    const out = [`--- diagnostics for ${this.name} (peer ${this.peerId ?? '?'}) ---`];
    try {
      const d = await this.page.evaluate(() => ({
        state: window.mafalda?.state,
        errors: window.mafalda?.errors,
        log: window.mafalda?.log?.slice(-40),
      }));
      out.push(`state: ${d.state}`);
      out.push(`errors: ${JSON.stringify(d.errors)}`);
      out.push('page log:', ...(d.log || []).map((l) => `  ${l}`));
    } catch (e) {
      out.push(`(page not readable: ${e.message})`);
    }
    if (this.pageErrors.length) out.push('page errors:', ...this.pageErrors.map((l) => `  ${l}`));
    out.push('console (last 30):', ...this.console.slice(-30).map((l) => `  ${l}`));
    return out.join('\n');
  }

  async leave() {
    try {
      await Promise.race([this.page.evaluate(() => window.mafalda.leave()), sleep(5000)]);
    } catch { /* page may be gone */ }
  }

  async close() {
    try { await Promise.race([this.browser?.close(), sleep(10_000)]); } catch { /* ignore */ }
  }
}

/** Index a sample's inbound stats by `${displayName}/${kind}` (summing duplicates). */
export function byPeerKind(sample) {
  const m = new Map();
  for (const s of sample.inbound) {
    const key = `${s.displayName ?? s.peerId}/${s.kind}`;
    const prev = m.get(key);
    if (prev) {
      prev.framesDecoded += s.framesDecoded;
      prev.packetsReceived += s.packetsReceived;
      prev.bytesReceived += s.bytesReceived;
    } else {
      m.set(key, { ...s });
    }
  }
  return m;
}

/**
 * Compare two samples of one receiver for the given sender names.
 * Returns { ok, rows, problems }: video must have framesDecoded > 0 and rising,
 * audio packetsReceived > 0 and rising.
 */
export function judge(prev, cur, senders, { audio = true, video = true } = {}) {
  const a = byPeerKind(prev);
  const b = byPeerKind(cur);
  const rows = [];
  const problems = [];
  const dt = Math.max(1, cur.at - prev.at) / 1000;
  for (const who of senders) {
    const kinds = [...(video ? ['video'] : []), ...(audio ? ['audio'] : [])];
    for (const kind of kinds) {
      const key = `${who}/${kind}`;
      const p = a.get(key);
      const c = b.get(key);
      if (!c) {
        problems.push(`no ${kind} consumer for ${who}`);
        rows.push({ from: who, kind, missing: true });
        continue;
      }
      const metric = kind === 'video' ? 'framesDecoded' : 'packetsReceived';
      const before = p ? p[metric] : 0;
      const now = c[metric];
      const rising = now > 0 && now > before;
      if (!rising) problems.push(`${who} ${kind}: ${metric} ${before} -> ${now}`);
      rows.push({
        from: who,
        kind,
        framesDecoded: c.framesDecoded,
        packetsReceived: c.packetsReceived,
        bytesReceived: c.bytesReceived,
        rate: (now - before) / dt,
        size: kind === 'video' && c.frameWidth ? `${c.frameWidth}x${c.frameHeight}` : '-',
        rising,
      });
    }
  }
  return { ok: problems.length === 0, rows, problems };
}

export function formatTable(title, rows) {
  const lines = [title];
  lines.push(`  ${'from'.padEnd(14)} ${'kind'.padEnd(5)} ${'framesDecoded'.padStart(13)} ${'packetsRecv'.padStart(11)} ${'bytesRecv'.padStart(10)} ${'rate/s'.padStart(7)} ${'size'.padStart(8)}  ok`);
  for (const r of rows) {
    if (r.missing) {
      lines.push(`  ${r.from.padEnd(14)} ${r.kind.padEnd(5)} ${'(no consumer)'.padStart(13)}${''.padStart(41)}  FAIL`);
      continue;
    }
    lines.push(`  ${r.from.slice(0, 14).padEnd(14)} ${r.kind.padEnd(5)} ${String(r.framesDecoded).padStart(13)} ${String(r.packetsReceived).padStart(11)} ${String(r.bytesReceived).padStart(10)} ${r.rate.toFixed(1).padStart(7)} ${r.size.padStart(8)}  ${r.rising ? 'yes' : 'FAIL'}`);
  }
  return lines.join('\n');
}

/** CPU seconds (user+sys) used so far by the live descendants of `rootPid` (and itself). */
export function treeCpuSeconds(rootPid = process.pid) {
  const { readdirSync } = require('node:fs');
  const info = new Map(); // pid -> { ppid, ticks }
  for (const d of readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    try {
      const stat = readFileSync(`/proc/${d}/stat`, 'utf8');
      const rest = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      // rest[0] = state (field 3), so field N is rest[N - 3].
      info.set(Number(d), { ppid: Number(rest[1]), ticks: Number(rest[11]) + Number(rest[12]) });
    } catch { /* raced with exit */ }
  }
  const children = new Map();
  for (const [pid, { ppid }] of info) {
    if (!children.has(ppid)) children.set(ppid, []);
    children.get(ppid).push(pid);
  }
  let ticks = 0;
  const stack = [rootPid];
  while (stack.length) {
    const pid = stack.pop();
    ticks += info.get(pid)?.ticks ?? 0;
    stack.push(...(children.get(pid) ?? []));
  }
  return ticks / 100; // USER_HZ is 100 on Linux
}

/**
 * The Python aiortc/pymediasoup participant (tests/e2e/aiortc_client.py) as a
 * child process. It joins `room` through `baseUrl`'s /ws, publishes generated
 * video and a tone, and prints `AIORTC PASS` once it decoded at least
 * `minFrames` video frames (and audio) from every peer named in `expect`;
 * then it keeps publishing until `release()`.
 */
export class PythonPeer {
  constructor(name, opts) {
    this.name = name;
    // { baseUrl, room, python, expect: [names], minFrames, res, fps, timeout, hostIp, verbose }
    // `urls`: signalling URLs to join through (the first) and rejoin through;
    // default: baseUrl's /ws. `token`: the access token of its joins; default:
    // it fetches a dev token from each node it joins through (aiortc_client.py).
    this.opts = opts;
    this.proc = null;
    this.exit = null; // Promise<{ code, signal }>
    this.exited = null; // { code, signal } once it exited
    this.passed = false;
    this.passes = 0; // AIORTC PASS lines (one per session that reached the floors)
    this.rejoins = 0; // AIORTC REJOINED lines
    this.out = [];
  }

  start() {
    const o = this.opts;
    const script = fileURLToPath(new URL('./aiortc_client.py', import.meta.url));
    const args = [
      '-u', script,
      '--url', (o.urls || [`${o.baseUrl.replace(/^http/, 'ws')}/ws`]).join(','),
      '--room', o.room,
      '--name', this.name,
      ...(o.expect || []).flatMap((n) => ['--expect', n]),
      '--min-peers', String(Math.max(1, (o.expect || []).length)),
      '--min-frames', String(o.minFrames),
      '--res', o.res,
      '--fps', String(o.fps),
      '--timeout', String(o.timeout),
      '--host-ip', o.hostIp || '127.0.0.1',
      ...(o.token ? ['--token', o.token] : []),
      '--hold-stdin',
      '--hold-max', String(o.timeout + 30),
      ...(o.verbose ? ['-v'] : []),
    ];
    this.proc = spawn(o.python, args, { stdio: ['pipe', 'pipe', 'pipe'] });
    this.exit = new Promise((resolve) => {
      this.proc.on('exit', (code, signal) => { this.exited = { code, signal }; resolve(this.exited); });
    });
    for (const stream of [this.proc.stdout, this.proc.stderr]) {
      createInterface({ input: stream }).on('line', (line) => {
        this.out.push(line);
        if (line.startsWith('AIORTC PASS')) { this.passed = true; this.passes++; }
        if (line.startsWith('AIORTC REJOINED')) this.rejoins++;
        console.log(`  [${this.name}] ${line}`);
      });
    }
  }

  /** Ask it to leave (a stdin line); kill it if it has not exited after `ms`. */
  async release(ms = 20_000) {
    if (!this.proc) return null;
    try { this.proc.stdin.end('bye\n'); } catch { /* already gone */ }
    const res = await Promise.race([this.exit, sleep(ms).then(() => null)]);
    if (!res) {
      console.log(`  ${this.name} did not exit within ${ms / 1000} s of release; killing it`);
      this.proc.kill('SIGKILL');
    }
    return res;
  }

  /** True when it reached its floors and exited 0 after release. */
  get ok() {
    return this.passed && this.exited?.code === 0;
  }

  async kill() {
    const p = this.proc;
    if (!p || p.exitCode !== null || p.signalCode !== null) return;
    try { p.kill('SIGTERM'); } catch { /* ignore */ }
    await Promise.race([this.exit, sleep(5000)]);
    try { p.kill('SIGKILL'); } catch { /* ignore */ }
  }
}
