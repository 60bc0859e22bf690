// Shared helpers for the browser end-to-end drivers (browser.mjs, aiortc_pair.mjs).
// playwright-core is installed in web/node_modules by scripts/setup-web.sh.

import { createRequire } from 'node:module';
import { readFileSync } from 'node:fs';

const require = createRequire(new URL('../../web/package.json', import.meta.url));
const { chromium } = require('playwright-core');

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
  '--allow-loopback-in-peer-connection',
  '--autoplay-policy=no-user-gesture-required',
  '--mute-audio',
  '--disable-renderer-backgrounding',
  '--disable-background-timer-throttling',
  '--disable-backgrounding-occluded-windows',
];

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

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
    this.opts = opts; // { baseUrl, room, res, fps, video, send }
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
    return `${this.opts.baseUrl}/?${q}`;
  }

  async launch() {
    const t0 = Date.now();
    this.browser = await chromium.launch({
      executablePath: CHROMIUM,
      headless: true,
      args: CHROMIUM_ARGS,
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
