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
//        [--timeout 120] [--min-frames 30]
//
// Run inside a loopback-only network namespace (scripts/e2e.sh does that).

import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { createInterface } from 'node:readline';
import {
  Participant, parseArgs, randomRoom, sleep, judge, formatTable,
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
  verbose: false,
});

const room = opts.room || randomRoom('e2e-aiortc');
const BROWSER = 'browser-a';
const PYNAME = 'aiortc-py';
const t0 = Date.now();
const secs = (ms) => (ms / 1000).toFixed(1);
const browser = new Participant(BROWSER, { baseUrl: opts.url, room, res: opts.res, fps: opts.fps });
let py = null;
let pyExit = null; // Promise<{code, signal}>
let pyPassed = false;
const pyOut = [];

function startPython() {
  const script = fileURLToPath(new URL('./aiortc_client.py', import.meta.url));
  const wsUrl = `${opts.url.replace(/^http/, 'ws')}/ws`;
  const args = [
    '-u', script,
    '--url', wsUrl,
    '--room', room,
    '--name', PYNAME,
    '--expect', BROWSER,
    '--min-frames', String(opts.minFrames),
    '--res', opts.res,
    '--fps', String(opts.fps),
    '--timeout', String(opts.timeout),
    '--hold-stdin',
    '--hold-max', String(opts.timeout + 30),
    ...(opts.verbose ? ['-v'] : []),
  ];
  py = spawn(opts.python, args, { stdio: ['pipe', 'pipe', 'pipe'] });
  pyExit = new Promise((resolve) => py.on('exit', (code, signal) => resolve({ code, signal })));
  for (const stream of [py.stdout, py.stderr]) {
    createInterface({ input: stream }).on('line', (line) => {
      pyOut.push(line);
      if (line.startsWith('AIORTC PASS')) pyPassed = true;
      console.log(`  [py] ${line}`);
    });
  }
}

async function main() {
  console.log(`aiortc e2e: chromium "${BROWSER}" + python "${PYNAME}", room ${room} -> ${opts.url}`);
  await browser.launch();
  await browser.join(opts.joinTimeout * 1000);
  console.log(`  ${BROWSER}: launched in ${browser.timings.launchMs} ms, joined+publishing in ${browser.timings.joinMs} ms`);

  startPython();
  const deadline = Date.now() + (opts.timeout + 15) * 1000;
  let prev = await browser.sample();
  let verdict = { ok: false, rows: [], problems: ['not sampled'] };
  let browserOk = false;
  let streak = 0;
  let exited = null;
  pyExit.then((r) => { exited = r; });
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
    if (browserOk && pyPassed) break;
    if (exited) break; // python gave up (or crashed) before we were done
  }

  // Release the python peer (it leaves on a stdin line) and collect its status.
  try { py.stdin.end('bye\n'); } catch { /* already gone */ }
  const res = await Promise.race([pyExit, sleep(20_000).then(() => null)]);
  let pyOk = false;
  if (!res) {
    console.log('  python peer did not exit within 20 s of release; killing it');
    py.kill('SIGKILL');
  } else {
    pyOk = res.code === 0 && pyPassed;
  }

  console.log('');
  console.log(formatTable(`${BROWSER} (peer ${browser.peerId}) receives:`, verdict.rows));
  console.log(`python peer: ${pyPassed ? 'decoded floors reached' : 'floors NOT reached'}, exit ${res ? (res.code ?? res.signal) : 'killed'}`);
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
  try { py?.kill('SIGKILL'); } catch { /* ignore */ }
  process.exit(3);
}, (opts.joinTimeout + opts.timeout + 90) * 1000);
try {
  ok = await main();
} catch (e) {
  console.error(`aiortc e2e: FAILED: ${e?.stack || e}`);
  if (browser.page) console.log(await browser.diagnostics());
} finally {
  if (py && py.exitCode === null && py.signalCode === null) {
    try { py.kill('SIGTERM'); } catch { /* ignore */ }
    await Promise.race([pyExit, sleep(5000)]);
    try { py.kill('SIGKILL'); } catch { /* ignore */ }
  }
  await browser.leave();
  await browser.close();
  clearTimeout(watchdog);
}
console.log(`aiortc e2e: ${ok ? 'PASS' : 'FAIL'} (${secs(Date.now() - t0)} s)`);
process.exit(ok ? 0 : 1);
