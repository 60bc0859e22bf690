#!/usr/bin/env node
// End-to-end test with real browsers: N separate headless Chromium instances
// join one room on a running Mafalda node through the demo page, and every
// browser must receive every other participant's video (framesDecoded rising)
// and audio (packetsReceived rising).
//
//   node tests/e2e/browser.mjs [--url http://127.0.0.1:3000] [--browsers 3]
//        [--res 320x240] [--fps 15] [--timeout 120] [--room NAME]
//
// Run inside a loopback-only network namespace (scripts/e2e.sh does that).
// Exit 0 on success; non-zero with diagnostics otherwise.

import {
  Participant, parseArgs, randomRoom, sleep, judge, formatTable, cpuSnapshot, cpuBusy, treeCpuSeconds,
} from './lib.mjs';

const opts = parseArgs({
  url: 'http://127.0.0.1:3000',
  browsers: 3,
  res: '320x240',
  fps: 15,
  timeout: 120, // seconds, for media to flow everywhere once all joined
  joinTimeout: 60, // seconds, per browser, launch + join + publish
  interval: 2, // seconds between stats samples
  rounds: 2, // consecutive all-rising samples required
  room: '',
  abruptLast: true, // the last browser closes without `leave` (socket drop)
  expectWorkers: 0, // if > 0: /api/status must show peers on that many workers, and pipes
});

const room = opts.room || randomRoom('e2e-browsers');
const names = Array.from({ length: opts.browsers }, (_, i) => `browser-${i + 1}`);
const parts = names.map((n) => new Participant(n, { baseUrl: opts.url, room, res: opts.res, fps: opts.fps }));
const t0 = Date.now();
const secs = (ms) => (ms / 1000).toFixed(1);

async function main() {
  console.log(`browser e2e: ${opts.browsers} chromium instances, room ${room}, ${opts.res}@${opts.fps} -> ${opts.url}`);

  // Launch and join concurrently: exercises events racing with joins.
  await Promise.all(parts.map(async (p) => {
    await p.launch();
    await p.join(opts.joinTimeout * 1000);
    console.log(`  ${p.name}: launched in ${p.timings.launchMs} ms, joined+publishing in ${p.timings.joinMs} ms (peer ${p.peerId})`);
  }));
  console.log(`all ${parts.length} joined after ${secs(Date.now() - t0)} s`);

  const deadline = Date.now() + opts.timeout * 1000;
  let prev = await Promise.all(parts.map((p) => p.sample()));
  let verdicts = [];
  const cpu0 = cpuSnapshot();
  const tree0 = treeCpuSeconds();
  let round = 0;
  let streak = 0;
  for (;;) {
    await sleep(opts.interval * 1000);
    round++;
    const cur = await Promise.all(parts.map((p) => p.sample()));
    verdicts = parts.map((p, i) => {
      const senders = names.filter((n) => n !== p.name);
      const v = judge(prev[i], cur[i], senders);
      if (cur[i].errors.length) {
        v.ok = false;
        v.problems.push(`page errors: ${JSON.stringify(cur[i].errors)}`);
      }
      return v;
    });
    prev = cur;
    streak = verdicts.every((v) => v.ok) ? streak + 1 : 0;
    if (streak >= opts.rounds) break;
    if (Date.now() > deadline) break;
    if (round % 5 === 0) {
      console.log(`  [${secs(Date.now() - t0)} s] waiting: ${verdicts.flatMap((v, i) => v.problems.map((x) => `${names[i]}: ${x}`)).slice(0, 4).join('; ')}`);
    }
  }
  const cpu1 = cpuSnapshot();
  const tree1 = treeCpuSeconds();
  let ok = streak >= opts.rounds;
  if (opts.expectWorkers > 0) {
    // The room must really span workers, with media piped between them.
    const status = await (await fetch(`${opts.url}/api/status`)).json();
    const used = status.workerDetails.filter((w) => w.peers > 0);
    const pipes = status.workerDetails.reduce((n, w) => n + w.pipeProducers, 0);
    const spans = used.length >= opts.expectWorkers && pipes > 0;
    console.log(`placement: peers on ${used.length} worker(s) [${status.workerDetails.map((w) => `w${w.slot}: ${w.peers} peers, ${w.pipeProducers} pipe producers`).join('; ')}] -> ${spans ? 'spans workers' : 'DOES NOT span workers'}`);
    ok = ok && spans;
  }

  console.log('');
  parts.forEach((p, i) => {
    const out = prev[i].outbound.map((o) => `${o.kind} ${o.kind === 'video' ? `${o.framesEncoded} frames` : `${o.packetsSent} pkts`}`).join(', ');
    console.log(formatTable(`${p.name} (peer ${p.peerId}) receives:   [sends: ${out || 'nothing'}]`, verdicts[i].rows));
  });
  console.log('');
  console.log(`media check ${ok ? 'PASSED' : 'FAILED'} after ${secs(Date.now() - t0)} s total; machine CPU busy ${(cpuBusy(cpu0, cpu1) * 100).toFixed(0)}% over the ${secs(cpu1.at - cpu0.at)} s media window; the ${parts.length} browsers used ${((tree1 - tree0) / ((cpu1.at - cpu0.at) / 1000)).toFixed(2)} cores`);
  if (!ok) {
    for (const [i, v] of verdicts.entries()) {
      if (!v.ok) console.log(`  ${names[i]} problems: ${v.problems.join('; ')}`);
    }
    for (const p of parts) console.log(await p.diagnostics());
  }
  return ok;
}

async function teardown() {
  // Graceful `leave` for all but the last; the last one just disappears.
  const graceful = opts.abruptLast ? parts.slice(0, -1) : parts;
  await Promise.all(graceful.map((p) => (p.page ? p.leave() : null)));
  await Promise.all(parts.map((p) => p.close()));
}

let ok = false;
const watchdog = setTimeout(() => {
  console.error(`browser e2e: watchdog fired after ${opts.joinTimeout + opts.timeout + 60} s`);
  process.exit(3);
}, (opts.joinTimeout + opts.timeout + 60) * 1000);
try {
  ok = await main();
} catch (e) {
  console.error(`browser e2e: FAILED: ${e?.stack || e}`);
  for (const p of parts) if (p.page) console.log(await p.diagnostics());
} finally {
  await teardown();
  clearTimeout(watchdog);
}
console.log(`browser e2e: ${ok ? 'PASS' : 'FAIL'} (${secs(Date.now() - t0)} s)`);
process.exit(ok ? 0 : 1);
