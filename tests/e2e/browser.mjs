#!/usr/bin/env node
// End-to-end test with real browsers: N separate headless Chromium instances
// join one room on a running Mafalda node through the demo page, and every
// browser must receive every other participant's video (framesDecoded rising)
// and audio (packetsReceived rising).
//
//   node tests/e2e/browser.mjs [--url http://127.0.0.1:3000] [--browsers 3]
//        [--res 320x240] [--fps 15] [--timeout 120] [--room NAME]
//
// Several nodes of a cluster: `--urls http://a:3000,http://b:3000,...` gives
// browser i the base URL i (round-robin), all in the same room.
// `--aiortc-url URL` adds the Python aiortc participant (aiortc_client.py,
// offering `--host-ip` as its ICE candidate) to the room through that node:
// it must decode every browser's video and audio, and every browser must
// receive its video and audio. `--expect-pipe-nodes K` then requires, while
// media flows, K nodes whose /api/status shows pipe producers and pipe
// consumers (media crossing nodes); `--status-urls a,b,c` names the nodes
// checked (default: those the participants join through).
// `--expect-spilled K` requires K browsers whose media another node serves
// than the one they joined through (spill-over: the ICE candidates a page
// got, its hook's `servedBy`, are not its signalling node's address).
//
// Run inside a loopback-only network namespace (scripts/e2e.sh does that),
// or on a private bridge of test hosts (scripts/e2e-cluster.sh).
// Exit 0 on success; non-zero with diagnostics otherwise.

import {
  Participant, PythonPeer, parseArgs, randomRoom, sleep, judge, formatTable, cpuSnapshot, cpuBusy,
  treeCpuSeconds, urlList,
} from './lib.mjs';

const cache = process.env.MAFALDA_CACHE || '/var/cache/mafalda';
const opts = parseArgs({
  url: 'http://127.0.0.1:3000',
  urls: '', // comma-separated base URLs, one per browser (round-robin); overrides --url
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
  aiortcUrl: '', // if set: the Python aiortc participant joins through this base URL
  hostIp: '127.0.0.1', // the ICE host candidate the Python participant offers
  python: process.env.PYTHON || `${cache}/venv/bin/python`,
  minFrames: 30, // video frames the Python participant must decode per browser
  expectPipeNodes: 0, // if > 0: that many nodes must show pipe producers and consumers
  joinStagger: 0, // ms: if > 0, browsers join one after another (then the Python one), not all at once
  statusUrls: '', // comma-separated base URLs of the nodes whose /api/status --expect-pipe-nodes reads
  expectSpilled: 0, // if > 0: that many browsers must get their media from another node than their signalling's
});

const urls = urlList(opts.urls, opts.url);
const room = opts.room || randomRoom('e2e-browsers');
const names = Array.from({ length: opts.browsers }, (_, i) => `browser-${i + 1}`);
const parts = names.map((n, i) => new Participant(n, {
  baseUrl: urls[i % urls.length], room, res: opts.res, fps: opts.fps,
}));
const PYNAME = 'aiortc-py';
const py = opts.aiortcUrl ? new PythonPeer(PYNAME, {
  baseUrl: opts.aiortcUrl.replace(/\/+$/, ''),
  room,
  python: opts.python,
  expect: names,
  minFrames: opts.minFrames,
  res: opts.res,
  fps: opts.fps,
  // It reports (its receive table) and exits by itself just before the
  // browsers' media deadline, when it did not get everything.
  timeout: opts.timeout,
  hostIp: opts.hostIp,
}) : null;
const t0 = Date.now();
const secs = (ms) => (ms / 1000).toFixed(1);

/** Each node's /api/status (every distinct base URL in use), as [{ url, status | error }]. */
async function nodeStatuses() {
  const bases = opts.statusUrls
    ? urlList(opts.statusUrls, '')
    : [...new Set([...parts.map((p) => p.opts.baseUrl), ...(py ? [py.opts.baseUrl] : [])])];
  return Promise.all(bases.map(async (url) => {
    try {
      const r = await fetch(`${url}/api/status`, { signal: AbortSignal.timeout(5000) });
      return { url, status: await r.json() };
    } catch (e) {
      return { url, error: String(e?.message || e) };
    }
  }));
}

function pipeSummary({ url, status, error }) {
  if (error) return { url, node: '?', error, pipeProducers: 0, pipeConsumers: 0, pipeTransports: 0 };
  const sum = (k) => status.workerDetails.reduce((n, w) => n + (w[k] || 0), 0);
  return {
    url,
    node: status.node,
    room: (status.roomDetails || []).find((r) => r.room === room), // this node's part in the room
    peers: status.peers,
    producers: status.producers,
    consumers: status.consumers,
    pipeTransports: sum('pipeTransports'),
    pipeProducers: sum('pipeProducers'),
    pipeConsumers: sum('pipeConsumers'),
  };
}

async function main() {
  const where = urls.length > 1 ? `${urls.join(', ')} (round-robin)` : urls[0];
  console.log(`browser e2e: ${opts.browsers} chromium instances, room ${room}, ${opts.res}@${opts.fps} -> ${where}`);
  if (py) console.log(`  + python participant ${PYNAME} -> ${py.opts.baseUrl} (ICE host ${opts.hostIp})`);

  const joined = (p) => console.log(`  ${p.name}: launched in ${p.timings.launchMs} ms, joined+publishing in ${p.timings.joinMs} ms (peer ${p.peerId}, ${p.opts.baseUrl})`);
  if (opts.joinStagger > 0) {
    // One at a time: launch all, then join in order, --join-stagger ms apart.
    await Promise.all(parts.map((p) => p.launch()));
    for (const p of parts) {
      await p.join(opts.joinTimeout * 1000);
      joined(p);
      await sleep(opts.joinStagger);
    }
    if (py) py.start();
  } else {
    // Launch and join concurrently: exercises events racing with joins.
    if (py) py.start();
    await Promise.all(parts.map(async (p) => {
      await p.launch();
      await p.join(opts.joinTimeout * 1000);
      joined(p);
    }));
  }
  console.log(`all ${parts.length} browsers joined after ${secs(Date.now() - t0)} s`);

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
      const senders = [...names.filter((n) => n !== p.name), ...(py ? [PYNAME] : [])];
      const v = judge(prev[i], cur[i], senders);
      if (cur[i].errors.length) {
        v.ok = false;
        v.problems.push(`page errors: ${JSON.stringify(cur[i].errors)}`);
      }
      return v;
    });
    prev = cur;
    streak = verdicts.every((v) => v.ok) ? streak + 1 : 0;
    if (streak >= opts.rounds && (!py || py.passed)) break;
    if (py?.exited) break; // the Python participant gave up (or crashed)
    if (Date.now() > deadline) break;
    if (round % 5 === 0) {
      const waits = verdicts.flatMap((v, i) => v.problems.map((x) => `${names[i]}: ${x}`));
      if (py && !py.passed) waits.push(`${PYNAME}: floors not reached yet`);
      console.log(`  [${secs(Date.now() - t0)} s] waiting: ${waits.slice(0, 4).join('; ')}`);
    }
  }
  const cpu1 = cpuSnapshot();
  const tree1 = treeCpuSeconds();
  const browsersOk = streak >= opts.rounds;
  let ok = browsersOk && (!py || py.passed);
  if (opts.expectPipeNodes > 0) {
    // Sampled while every participant is still sending: media must cross nodes.
    const nodes = (await nodeStatuses()).map(pipeSummary);
    const piped = nodes.filter((n) => n.pipeProducers > 0 && n.pipeConsumers > 0);
    for (const n of nodes) {
      console.log(n.error
        ? `node ${n.url}: /api/status failed: ${n.error}`
        : `node ${n.node} (${n.url}): ${n.peers} peers, ${n.producers} producers, ${n.consumers} consumers; pipes: ${n.pipeTransports} transports, ${n.pipeProducers} producers, ${n.pipeConsumers} consumers`);
    }
    const crosses = piped.length >= opts.expectPipeNodes;
    console.log(`pipes: ${piped.length} node(s) with pipe producers and consumers (want >= ${opts.expectPipeNodes}) -> ${crosses ? 'media crosses nodes' : 'media does NOT cross nodes as expected'}`);
    // The room's map: one home, every other node that has the room a shard
    // of it (a node none of whose participants is in the room, as a peer
    // a spilled room never reached, has no part in it).
    for (const n of nodes.filter((x) => x.room)) {
      const r = n.room;
      const links = (l) => l.map((x) => `${x.from}->${x.to}${x.hops ? ` (${x.hops})` : ''}`).join(' ') || '-';
      console.log(`  room on ${n.node}: ${r.role}${r.role === 'shard' ? ` of ${r.home}` : ''}${r.shards?.length ? ` [shards ${r.shards.join(', ')}]` : ''}, peers ${r.peers} + ${r.remotePeers} remote, producers ${r.producers} + ${r.remoteProducers} remote; links in ${links(r.linksIn)}; out ${links(r.linksOut)}`);
    }
    const homes = nodes.filter((n) => n.room?.role === 'home').map((n) => n.node);
    const strays = nodes.filter((n) => !n.error && n.room && n.room.role !== 'home' && !(n.room.role === 'shard' && n.room.home === homes[0]));
    const oneMap = homes.length === 1 && strays.length === 0;
    console.log(`room map: ${homes.length} home(s) [${homes.join(', ')}]${strays.length ? `; not a shard of it: ${strays.map((n) => `${n.node} (${n.room ? `${n.room.role}${n.room.home ? ` of ${n.room.home}` : ''}` : 'no room'})`).join(', ')}` : ''} -> ${oneMap ? 'one room' : 'SPLIT or incomplete'}`);
    ok = ok && crosses && oneMap;
  }
  if (opts.expectSpilled > 0) {
    // Where each page signals (the node it joined through) and where its
    // media is (the address in the ICE candidates it got).
    const spots = await Promise.all(parts.map((p) => p.where()));
    let spilled = 0;
    spots.forEach((w, i) => {
      const via = w?.via ? new URL(w.via.replace(/^ws/, 'http')).hostname : '?';
      const away = !!w?.servedBy && w.servedBy !== via;
      if (away) spilled++;
      console.log(`  ${names[i]}: signalling via ${w?.node ?? '?'} (${via}), media served by ${w?.servedBy ?? '?'}${away ? '  <- spilled over' : ''}`);
    });
    const enough = spilled >= opts.expectSpilled;
    console.log(`spill-over: ${spilled} browser(s) served by another node (want >= ${opts.expectSpilled}) -> ${enough ? 'spilled' : 'NOT spilled as expected'}`);
    ok = ok && enough;
  }
  let pyRes = null;
  if (py) {
    // Release it now (it leaves on a stdin line) and collect its verdict.
    pyRes = await py.release(20_000);
    ok = ok && py.ok;
  }
  if (opts.expectWorkers > 0) {
    // The room must really span workers, with media piped between them.
    const status = await (await fetch(`${urls[0]}/api/status`)).json();
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
  if (py) {
    console.log(`${PYNAME}: ${py.passed ? `decoded >= ${opts.minFrames} video frames and audio from every browser` : 'floors NOT reached'}, exit ${pyRes ? (pyRes.code ?? pyRes.signal) : 'killed'}`);
  }
  console.log(`media check ${ok ? 'PASSED' : 'FAILED'} after ${secs(Date.now() - t0)} s total; machine CPU busy ${(cpuBusy(cpu0, cpu1) * 100).toFixed(0)}% over the ${secs(cpu1.at - cpu0.at)} s media window; the ${parts.length} browsers${py ? ` and ${PYNAME}` : ''} used ${((tree1 - tree0) / ((cpu1.at - cpu0.at) / 1000)).toFixed(2)} cores`);
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
  if (py) await py.kill();
  const graceful = opts.abruptLast ? parts.slice(0, -1) : parts;
  await Promise.all(graceful.map((p) => (p.page ? p.leave() : null)));
  await Promise.all(parts.map((p) => p.close()));
}

let ok = false;
const watchdog = setTimeout(() => {
  console.error(`browser e2e: watchdog fired after ${opts.joinTimeout + opts.timeout + 60} s`);
  try { py?.proc?.kill('SIGKILL'); } catch { /* ignore */ }
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
