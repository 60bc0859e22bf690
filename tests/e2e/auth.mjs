#!/usr/bin/env node
// End-to-end check of access tokens with a node in `[auth] mode = "dev"`
// (scripts/e2e.sh runs its node so): what clients see.
//
//   - GET /api/dev-token: a token for room + identity; 400 without them or
//     with an unknown grant;
//   - raw signalling sockets (from a page of the node, so same origin):
//     `join` without a token, with a garbage one, or with one for another
//     room fails `unauthorized`; a token on the URL (`/ws?token=`) admits;
//     without `rename` the display name is the token's identity (what the
//     other participants see); requests outside the grants fail
//     `forbidden` (createPlainTransport without `plain`, produce and
//     produceData with a subscribe-only token, consume with a publish-only
//     one);
//   - the demo page: with `token=` in its URL it joins with that token
//     (hook `tokenFrom` 'url', and the others see its identity); with a
//     bad one it ends in state `failed` with the `unauthorized` error shown.
//
//   node tests/e2e/auth.mjs [--url http://127.0.0.1:3000] [--timeout 60]
//
// Run inside a loopback-only network namespace (scripts/e2e.sh does that).

import { Participant, parseArgs, randomRoom, devToken, eventually } from './lib.mjs';

const opts = parseArgs({
  url: 'http://127.0.0.1:3000',
  timeout: 60,
  room: '',
});
const base = opts.url.replace(/\/+$/, '');
const room = opts.room || randomRoom('e2e-auth');
const t0 = Date.now();
const secs = (ms) => (ms / 1000).toFixed(1);
const results = [];

function check(name, ok, detail = '') {
  results.push({ name, ok: !!ok });
  console.log(`  ${ok ? 'ok  ' : 'FAIL'} ${name}${detail ? `: ${detail}` : ''}`);
}

// Raw signalling sockets, driven from inside the page: `sock(i)` handles.
const PAGE_HELPERS = () => {
  const socks = [];
  window.authProbe = {
    async open(query = '') {
      const ws = new WebSocket(`${location.protocol === 'https:' ? 'wss' : 'ws'}://${location.host}/ws${query}`);
      const s = { ws, next: 1, pending: new Map(), events: [], closed: false };
      ws.onmessage = (ev) => {
        const m = JSON.parse(ev.data);
        if (m.response === true) {
          s.pending.get(m.id)?.(m);
          s.pending.delete(m.id);
        } else s.events.push(m);
      };
      ws.onclose = () => { s.closed = true; };
      await new Promise((res, rej) => { ws.onopen = res; ws.onerror = () => rej(new Error('WebSocket error')); });
      socks.push(s);
      return socks.length - 1;
    },
    // -> { ok, data } or { ok: false, code, message }
    request(i, method, data) {
      const s = socks[i];
      const id = s.next++;
      return new Promise((res) => {
        const timer = setTimeout(() => res({ ok: false, code: 'timeout', message: 'no answer in 10 s' }), 10_000);
        s.pending.set(id, (m) => {
          clearTimeout(timer);
          res(m.ok ? { ok: true, data: m.data } : { ok: false, code: m.error?.code, message: m.error?.message });
        });
        s.ws.send(JSON.stringify(data === undefined ? { id, method } : { id, method, data }));
      });
    },
    events(i) { return socks[i].events.map((e) => ({ event: e.event, data: e.data })); },
    close(i) { socks[i].ws.close(1000); },
  };
};

const page = new Participant('auth-page', { baseUrl: base, room });
// The raw sockets live in a page of their own (the demo page navigates).
let probePage = null;
const probe = (fn, ...args) => probePage.evaluate(fn, args);
const open = (query = '') => probe(([q]) => window.authProbe.open(q), query);
const request = (i, method, data) => probe(([j, m, d]) => window.authProbe.request(j, m, d), i, method, data);
const join = (i, displayName, token, r = room) => request(i, 'join', {
  room: r, displayName, protocolVersion: 1, ...(token === undefined ? {} : { token }),
});
const describe = (r) => (r.ok ? 'ok' : `${r.code}: ${r.message}`);

async function main() {
  console.log(`auth e2e: room ${room} -> ${base}`);

  // ---- GET /api/dev-token
  const r0 = await fetch(`${base}/api/dev-token?room=${encodeURIComponent(room)}&identity=alice`);
  const body = r0.ok ? await r0.json() : {};
  check('GET /api/dev-token answers a token', r0.status === 200 && typeof body.token === 'string'
    && body.room === room && body.identity === 'alice' && body.expiresIn > 0,
  `HTTP ${r0.status} ${JSON.stringify({ ...body, token: body.token ? `${body.token.slice(0, 12)}...` : body.token })}`);
  const r1 = await fetch(`${base}/api/dev-token?identity=alice`);
  check('GET /api/dev-token without a room: 400', r1.status === 400, `HTTP ${r1.status}`);
  const r2 = await fetch(`${base}/api/dev-token?room=${encodeURIComponent(room)}&identity=alice&grant=everything`);
  check('GET /api/dev-token with an unknown grant: 400', r2.status === 400, `HTTP ${r2.status}`);

  // ---- raw sockets from a page of the node (no room: the page does not join)
  await page.launch();
  probePage = await page.browser.newPage();
  await probePage.addInitScript(PAGE_HELPERS);
  await probePage.goto(`${base}/`, { waitUntil: 'load', timeout: opts.timeout * 1000 });

  let s = await open();
  let r = await join(s, 'nobody');
  check('join without a token: unauthorized', !r.ok && r.code === 'unauthorized', describe(r));
  r = await join(s, 'nobody', 'not.a.token');
  check('join with a garbage token: unauthorized', !r.ok && r.code === 'unauthorized', describe(r));
  r = await join(s, 'nobody', await devToken(base, `${room}-other`, 'nobody'));
  check('join with a token for another room: unauthorized', !r.ok && r.code === 'unauthorized', describe(r));
  // The session stays usable after a refused join.
  r = await join(s, 'eve', await devToken(base, room, 'eve', ['subscribe']));
  check('join after refused joins, subscribe-only token: admitted', r.ok, describe(r));
  const subOnly = s;

  // `?token=` on the URL; no `rename`: the display name is the identity.
  const urlToken = await devToken(base, room, 'url-alice', ['publish:audio', 'subscribe']);
  s = await open(`?token=${encodeURIComponent(urlToken)}`);
  r = await join(s, 'someone-else');
  check('join with ?token= on the WebSocket URL: admitted', r.ok, describe(r));
  const alice = s;

  // Another one with `rename`: its own display name, and it sees the first's identity.
  s = await open();
  r = await join(s, 'bob-renamed', await devToken(base, room, 'bob', ['publish', 'rename']));
  const names = r.ok ? (r.data.peers || []).map((p) => p.displayName) : [];
  check('join with rename: admitted', r.ok, describe(r));
  check('without rename the others see the identity', names.includes('url-alice') && !names.includes('someone-else'),
    `peers ${JSON.stringify(names)}`);
  const bob = s;
  const seen = await eventually('eve to see bob join under his own name', async () => {
    const ev = await probe(([i]) => window.authProbe.events(i), subOnly);
    const joined = ev.filter((e) => e.event === 'peerJoined').map((e) => e.data.displayName);
    return { ok: joined.includes('bob-renamed'), detail: joined };
  }, { timeoutMs: 10_000 }).then(() => true, (e) => { console.log(`    ${e.message}`); return false; });
  check('with rename the others see the chosen name', seen);

  // ---- grants
  r = await request(alice, 'createPlainTransport', { direction: 'send' });
  check('createPlainTransport without plain: forbidden', !r.ok && r.code === 'forbidden', describe(r));
  const fakeId = '00000000-0000-4000-8000-000000000000';
  const rtpParameters = { codecs: [], headerExtensions: [], encodings: [], rtcp: { reducedSize: true } };
  r = await request(subOnly, 'produce', { transportId: fakeId, kind: 'audio', rtpParameters });
  check('produce with a subscribe-only token: forbidden', !r.ok && r.code === 'forbidden', describe(r));
  r = await request(alice, 'produce', { transportId: fakeId, kind: 'video', rtpParameters });
  check('produce video with publish:audio: forbidden', !r.ok && r.code === 'forbidden', describe(r));
  r = await request(alice, 'produce', { transportId: fakeId, kind: 'audio', rtpParameters });
  check('produce audio with publish:audio: not forbidden', !r.ok && r.code !== 'forbidden', describe(r));
  r = await request(subOnly, 'produceData', {
    transportId: fakeId, sctpStreamParameters: { streamId: 0, ordered: true }, label: 'chat', protocol: '',
  });
  check('produceData with a subscribe-only token: forbidden', !r.ok && r.code === 'forbidden', describe(r));
  r = await request(bob, 'consume', { transportId: fakeId, producerId: fakeId, rtpCapabilities: { codecs: [], headerExtensions: [] } });
  check('consume without subscribe: forbidden', !r.ok && r.code === 'forbidden', describe(r));
  for (const i of [subOnly, alice, bob]) await request(i, 'leave');

  // ---- the demo page with a token in its URL
  const pageToken = await devToken(base, room, 'page-carol', ['publish', 'subscribe']);
  s = await open();
  r = await join(s, 'watcher', await devToken(base, room, 'watcher', ['subscribe']));
  const watcher = s;
  page.opts.query = { token: pageToken, name: 'ignored-name', video: 0 };
  try {
    await page.join(opts.timeout * 1000);
    const st = await page.page.evaluate(() => ({ tokenFrom: window.mafalda.tokenFrom, state: window.mafalda.state }));
    check('the demo page joins with the token of its URL', st.state === 'ready' && st.tokenFrom === 'url', JSON.stringify(st));
  } catch (e) {
    check('the demo page joins with the token of its URL', false, e.message);
  }
  const carol = await eventually('the watcher to see the page join as its identity', async () => {
    const ev = await probe(([i]) => window.authProbe.events(i), watcher);
    const joined = ev.filter((e) => e.event === 'peerJoined').map((e) => e.data.displayName);
    return { ok: joined.includes('page-carol'), detail: joined };
  }, { timeoutMs: 10_000 }).then(() => true, (e) => { console.log(`    ${e.message}`); return false; });
  check('the others see the page under the token identity', carol);
  await page.leave();
  await request(watcher, 'leave');

  // ---- the demo page with a bad token: failed, and says why
  page.opts.query = { token: 'not.a.token', video: 0 };
  await page.page.goto(page.url(), { waitUntil: 'load', timeout: opts.timeout * 1000 });
  await page.page.waitForFunction(() => ['failed', 'ready'].includes(window.mafalda?.state), null,
    { timeout: opts.timeout * 1000, polling: 250 });
  const bad = await page.page.evaluate(() => ({
    state: window.mafalda.state,
    shown: document.getElementById('errors')?.textContent || '',
  }));
  check('the demo page with a bad token fails and shows unauthorized',
    bad.state === 'failed' && bad.shown.includes('unauthorized'), JSON.stringify(bad));

  return results.every((x) => x.ok);
}

let ok = false;
const watchdog = setTimeout(() => { console.error('auth e2e: watchdog fired'); process.exit(3); },
  (opts.timeout * 3 + 60) * 1000);
try {
  ok = await main();
} catch (e) {
  console.error(`auth e2e: FAILED: ${e?.stack || e}`);
  if (page.page) console.log(await page.diagnostics());
} finally {
  await page.close();
  clearTimeout(watchdog);
}
const failed = results.filter((x) => !x.ok).map((x) => x.name);
console.log(`auth e2e: ${ok ? 'PASS' : 'FAIL'} (${results.length - failed.length}/${results.length} checks, ${secs(Date.now() - t0)} s)${failed.length ? `; failed: ${failed.join('; ')}` : ''}`);
process.exit(ok ? 0 : 1);
