#!/usr/bin/env node
// End-to-end test of moving between nodes: a headless Chromium on the demo
// page and the Python aiortc participant both join one room through the
// victim node (--victim). Once each decodes the other:
//
//   1. loss: the victim is killed (SIGKILL). Both must rejoin through
//      another node by themselves (the page knows the others from
//      /api/nodes, the Python peer from its --url list) and decode each
//      other again;
//   2. drain (unless --drain=0): the node the page rejoined through gets
//      SIGTERM, so it drains: both are told `reconnect` with a peer's URL
//      and must move there (the page by navigating, the Python peer by
//      joining there before leaving) and decode each other again.
//
//   node tests/e2e/failover.mjs --urls http://a:3000,http://b:3000,http://c:3000
//        --pids PID_A,PID_B,PID_C --victim http://b:3000 [--host-ip 198.18.0.254]
//        [--timeout 60] [--res 320x240] [--fps 15] [--drain=0]
//
// Each phase passes when the page's hook shows one more rejoin, `ready`,
// and a node other than the one gone; over 2 consecutive samples the Python
// peer's video frames decoded and audio packets rising on the page; no page
// errors; and the Python peer printed one more rejoin and another AIORTC
// PASS (>= --min-frames of the browser's video, and audio, through its new
// session). Prints how long each took. Exit 0 on success.

import {
  Participant, PythonPeer, parseArgs, randomRoom, sleep, judge, formatTable, urlList, byPeerKind,
} from './lib.mjs';

const cache = process.env.MAFALDA_CACHE || '/var/cache/mafalda';
const opts = parseArgs({
  urls: '', // base URLs of every node (the page may move to any of them)
  pids: '', // their process ids, in the same order
  victim: '', // base URL of the node both join through, and that is killed
  drain: true, // then drain the node the page rejoined through
  room: '',
  res: '320x240',
  fps: 15,
  timeout: 60, // seconds for each phase: media before the kill, and after each move
  joinTimeout: 60,
  interval: 2,
  rounds: 2,
  minFrames: 30,
  hostIp: '127.0.0.1',
  python: process.env.PYTHON || `${cache}/venv/bin/python`,
});

const urls = urlList(opts.urls, opts.victim);
const pids = opts.pids.split(',').map(Number);
const victim = opts.victim.replace(/\/+$/, '');
if (!urls.includes(victim) || pids.length !== urls.length || pids.some((p) => !(p > 0))) {
  console.error('failover: --victim must be one of --urls, and --pids must give one pid per URL');
  process.exit(2);
}
const pidOf = (base) => pids[urls.indexOf(base)];
const ws = (base) => `${base.replace(/^http/, 'ws')}/ws`;
const room = opts.room || randomRoom('e2e-failover');
const BROWSER = 'browser-f';
const PYNAME = 'aiortc-f';
const t0 = Date.now();
const secs = (ms) => (ms / 1000).toFixed(1);
const browser = new Participant(BROWSER, {
  baseUrl: victim, room, res: opts.res, fps: opts.fps, origins: urls,
});
const py = new PythonPeer(PYNAME, {
  baseUrl: victim,
  // The victim first, then the others in the order given.
  urls: [victim, ...urls.filter((u) => u !== victim)].map(ws),
  room,
  python: opts.python,
  expect: [BROWSER],
  minFrames: opts.minFrames,
  res: opts.res,
  fps: opts.fps,
  timeout: opts.timeout,
  hostIp: opts.hostIp,
});

/** Samples the page until it decodes the Python peer's media `rounds` times in a row. */
async function pageDecodes(deadline) {
  let prev = null;
  let streak = 0;
  let verdict = { ok: false, rows: [], problems: ['not sampled'] };
  while (Date.now() < deadline) {
    await sleep(opts.interval * 1000);
    let cur;
    try {
      cur = await browser.sample();
    } catch (e) {
      verdict = { ok: false, rows: [], problems: [`page not readable: ${e.message}`] };
      prev = null;
      streak = 0;
      continue;
    }
    if (prev) {
      verdict = judge(prev, cur, [PYNAME]);
      streak = verdict.ok ? streak + 1 : 0;
      if (streak >= opts.rounds) return verdict;
    }
    prev = cur;
  }
  return verdict;
}

/** Polls the page until it decoded a frame of the Python peer's video and got its audio. */
async function firstMedia(deadline) {
  while (Date.now() < deadline) {
    try {
      const got = byPeerKind(await browser.sample());
      if (got.get(`${PYNAME}/video`)?.framesDecoded > 0 && got.get(`${PYNAME}/audio`)?.packetsReceived > 0) return true;
    } catch { /* navigating */ }
    await sleep(250);
  }
  return false;
}

async function waitFor(pred, deadline) {
  while (Date.now() < deadline) {
    if (pred()) return true;
    if (py.exited) return false;
    await sleep(250);
  }
  return pred();
}

/** The base URL (one of --urls) of the node a page address is on. */
const baseOf = (href) => urls.find((u) => new URL(u).origin === new URL(href).origin);

/**
 * One move: `act()` makes the node at `gone` go; the page must then show
 * rejoin number `n` through another node, decode again, and the Python peer
 * rejoin (its n-th) and pass again. Answers the page's new base URL, or null.
 */
async function move(label, gone, n, act) {
  const t = Date.now();
  act();
  const deadline = t + opts.timeout * 1000;
  let after;
  try {
    after = await browser.waitWhere(
      (w) => w.rejoins >= n && w.isReady && w.state === 'ready' && baseOf(w.url) !== gone,
      deadline - Date.now(),
      `the page to rejoin through another node than ${gone}`,
    );
  } catch (e) {
    console.log(`  ${label}: ${e.message}`);
    return null;
  }
  console.log(`  ${label}: ${BROWSER} ready again after ${secs(Date.now() - t)} s via ${after.via} (media on ${after.servedBy}), rejoins ${after.rejoins}`);
  if (await firstMedia(deadline)) {
    console.log(`  ${label}: ${BROWSER} got the first video frame and audio of ${PYNAME} again after ${secs(Date.now() - t)} s`);
  }
  const v = await pageDecodes(deadline);
  const tMedia = Date.now();
  const pyOk = await waitFor(() => py.rejoins >= n && py.passes >= n + 1, deadline);
  const tPy = Date.now();
  const now = await browser.where();
  console.log(formatTable(`${BROWSER} receives (after ${label}):`, v.rows));
  console.log(`  ${label}: ${BROWSER} ${v.ok ? `decodes ${PYNAME} again (2 samples rising by ${secs(tMedia - t)} s)` : `does NOT decode ${PYNAME} again: ${v.problems.join('; ')}`}`);
  console.log(`  ${label}: ${PYNAME} ${pyOk ? `rejoined and decodes ${BROWSER} again (>= ${opts.minFrames} frames) by ${secs(tPy - t)} s` : `rejoins ${py.rejoins}, passes ${py.passes}: did NOT decode again`}`);
  const errors = now?.errors ?? [];
  if (errors.length) console.log(`  ${label}: page errors: ${JSON.stringify(errors)}`);
  return v.ok && pyOk && errors.length === 0 ? baseOf(now.url) : null;
}

async function main() {
  console.log(`failover e2e: chromium "${BROWSER}" + python "${PYNAME}" through ${victim}, room ${room}; nodes ${urls.map((u, i) => `${u} (pid ${pids[i]})`).join(', ')}`);
  await browser.launch();
  await browser.join(opts.joinTimeout * 1000);
  py.start();
  const deadline = Date.now() + opts.timeout * 1000;
  const v0 = await pageDecodes(deadline);
  const py0 = await waitFor(() => py.passes >= 1, deadline);
  const before = await browser.where();
  if (!v0.ok || !py0) {
    console.log(formatTable(`${BROWSER} receives (before the kill):`, v0.rows));
    console.log(`before the kill: page ${v0.ok ? 'decodes' : `does NOT decode: ${v0.problems.join('; ')}`}; ${PYNAME} ${py0 ? 'passed' : 'did NOT pass'}`);
    return false;
  }
  console.log(`  media flows both ways through ${before.node} (${before.via}) after ${secs(Date.now() - t0)} s; the page's rejoin list: ${before.nodes.join(' ')}`);

  const landed = await move('node loss', victim, 1, () => {
    process.kill(pidOf(victim), 'SIGKILL');
    console.log(`  node loss: killed ${victim} (pid ${pidOf(victim)}) with SIGKILL`);
  });
  if (!landed) return false;
  if (!opts.drain) return true;
  const moved = await move('drain', landed, 2, () => {
    process.kill(pidOf(landed), 'SIGTERM');
    console.log(`  drain: SIGTERM to ${landed} (pid ${pidOf(landed)}), where the page rejoined`);
  });
  return !!moved;
}

let ok = false;
const phases = opts.drain ? 3 : 2;
const watchdog = setTimeout(() => {
  console.error(`failover e2e: watchdog fired after ${opts.joinTimeout + phases * opts.timeout + 60} s`);
  try { py.proc?.kill('SIGKILL'); } catch { /* ignore */ }
  process.exit(3);
}, (opts.joinTimeout + phases * opts.timeout + 60) * 1000);
try {
  ok = await main();
} catch (e) {
  console.error(`failover e2e: FAILED: ${e?.stack || e}`);
}
if (!ok) console.log(await browser.diagnostics());
await py.release(20_000);
ok = ok && py.ok;
await browser.leave();
await browser.close();
clearTimeout(watchdog);
console.log(`failover e2e: ${ok ? 'PASS' : 'FAIL'} (${secs(Date.now() - t0)} s)`);
process.exit(ok ? 0 : 1);
