#!/usr/bin/env node
// End-to-end test between a real browser and a Python aiortc/pymediasoup peer:
// one headless Chromium joins a room through the demo page, then
// tests/e2e/aiortc_client.py joins the same room. Both directions must carry
// media:
//   - the Python peer decodes >= --min-frames video frames (and audio) of the browser;
//   - the browser's framesDecoded for the Python peer's video rises, and its
//     audio packetsReceived rises.
//
//   node tests/e2e/aiortc_pair.mjs [--url http://127.0.0.1:3000] [--python PATH]
//        [--timeout 120] [--min-frames 30] [--host-ip 127.0.0.1]
//
// Run inside a loopback-only network namespace (scripts/e2e.sh does that), or
// with --host-ip set to this machine's address towards a node elsewhere.

import {
  Participant, PythonPeer, parseArgs, randomRoom, sleep, judge, formatTable,
} from './lib.mjs';

const cache = process.env.MAFALDA_CACHE || '/var/cache/mafalda';
const opts = parseArgs({
  url: 'http://127.0.0.1:3000',
  python: process.env.PYTHON || `${cache}/venv/bin/python`,
  res: '320x240',
  fps: 15,
  timeout: 120,
  joinTimeout: 60,
  minFrames: 30,
  interval: 2,
  room: '',
  hostIp: '127.0.0.1', // the ICE host candidate the Python peer offers
  verbose: false,
});

const room = opts.room || randomRoom('e2e-aiortc');
const BROWSER = 'browser-a';
const PYNAME = 'aiortc-py';
const t0 = Date.now();
const secs = (ms) => (ms / 1000).toFixed(1);
const browser = new Participant(BROWSER, { baseUrl: opts.url, room, res: opts.res, fps: opts.fps });
const py = new PythonPeer(PYNAME, {
  baseUrl: opts.url,
  room,
  python: opts.python,
  expect: [BROWSER],
  minFrames: opts.minFrames,
  res: opts.res,
  fps: opts.fps,
  timeout: opts.timeout,
  hostIp: opts.hostIp,
  verbose: opts.verbose,
});

async function main() {
  console.log(`aiortc e2e: chromium "${BROWSER}" + python "${PYNAME}", room ${room} -> ${opts.url}`);
  await browser.launch();
  await browser.join(opts.joinTimeout * 1000);
  console.log(`  ${BROWSER}: launched in ${browser.timings.launchMs} ms, joined+publishing in ${browser.timings.joinMs} ms`);

  py.start();
  const deadline = Date.now() + (opts.timeout + 15) * 1000;
  let prev = await browser.sample();
  let verdict = { ok: false, rows: [], problems: ['not sampled'] };
  let browserOk = false;
  let streak = 0;
  while (Date.now() < deadline) {
    await sleep(opts.interval * 1000);
    const cur = await browser.sample();
    verdict = judge(prev, cur, [PYNAME]);
    if (cur.errors.length) {
      verdict.ok = false;
      verdict.problems.push(`page errors: ${JSON.stringify(cur.errors)}`);
    }
    prev = cur;
    streak = verdict.ok ? streak + 1 : 0;
    if (streak >= 2) browserOk = true;
    if (browserOk && py.passed) break;
    if (py.exited) break; // python gave up (or crashed) before we were done
  }

  // Release the python peer (it leaves on a stdin line) and collect its status.
  const res = await py.release(20_000);
  const pyOk = py.ok;

  console.log('');
  console.log(formatTable(`${BROWSER} (peer ${browser.peerId}) receives:`, verdict.rows));
  console.log(`python peer: ${py.passed ? 'decoded floors reached' : 'floors NOT reached'}, exit ${res ? (res.code ?? res.signal) : 'killed'}`);
  const ok = browserOk && pyOk;
  console.log(`aiortc check ${ok ? 'PASSED' : 'FAILED'} after ${secs(Date.now() - t0)} s`);
  if (!ok) {
    if (!browserOk) console.log(`  browser problems: ${verdict.problems.join('; ')}`);
    console.log(await browser.diagnostics());
  }
  return ok;
}

let ok = false;
const watchdog = setTimeout(() => {
  console.error('aiortc e2e: watchdog fired');
  try { py.proc?.kill('SIGKILL'); } catch { /* ignore */ }
  process.exit(3);
}, (opts.joinTimeout + opts.timeout + 90) * 1000);
try {
  ok = await main();
} catch (e) {
  console.error(`aiortc e2e: FAILED: ${e?.stack || e}`);
  if (browser.page) console.log(await browser.diagnostics());
} finally {
  await py.kill();
  await browser.leave();
  await browser.close();
  clearTimeout(watchdog);
}
console.log(`aiortc e2e: ${ok ? 'PASS' : 'FAIL'} (${secs(Date.now() - t0)} s)`);
process.exit(ok ? 0 : 1);
