#!/usr/bin/env node
// The cluster dashboard (web/dashboard.html, web/src/dashboard.js) in one
// headless Chromium: it loads `/dashboard` of one node while a room spans
// several, and checks from the DOM (the page's data attributes) that:
//   - every node of --nodes has its column, live (events arriving);
//   - the room --room has a router drawn on each of those nodes;
//   - a pipe link of the room is drawn from one of those nodes to another
//     (carrying >= 1 producer);
//   - the rooms table shows the room with >= --participants participants,
//     on those nodes, with one home; the nodes table shows them alive;
//   - every node's stream goes on: its event count rises by >= 2 within 3 s;
//   - the page threw no error.
// Then it saves a screenshot (--screenshot PATH, a PNG; on failure too) and
// prints its path.
//
//   node tests/e2e/dashboard.mjs --url http://198.18.0.1:3000 --room NAME \
//        --nodes mafalda-1,mafalda-2 [--participants 2] [--timeout 20] [--screenshot PATH]
//
// Run where the nodes are reachable (scripts/e2e-cluster.sh, step
// `dashboard`, runs it on its private bridge). Exit 0 on success.

import { chromium, CHROMIUM, CHROMIUM_ARGS, parseArgs, sleep } from './lib.mjs';

const opts = parseArgs({
  url: 'http://127.0.0.1:3000',
  room: '',
  nodes: '', // comma-separated node names the room spans
  participants: 2,
  timeout: 20, // seconds for the whole picture to show
  screenshot: '',
});
const nodes = opts.nodes.split(',').map((n) => n.trim()).filter(Boolean);
if (!opts.room || nodes.length < 2) {
  console.error('dashboard: needs --room and --nodes with at least two node names');
  process.exit(2);
}
const base = opts.url.replace(/\/+$/, '');
const t0 = Date.now();
const secs = (ms) => (ms / 1000).toFixed(1);

/** Runs in the page: what the DOM shows of the room and the nodes. */
function look({ room, nodes, participants }) {
  const q = (sel) => [...document.querySelectorAll(sel)];
  const attr = (v) => CSS.escape(v);
  const missing = [];
  for (const n of nodes) {
    const col = document.querySelector(`#graph g.node[data-node="${attr(n)}"]`);
    if (!col) missing.push(`no column for ${n}`);
    else if (col.dataset.live !== '1') missing.push(`${n} not live`);
    const routers = q(`#graph g.router[data-room="${attr(room)}"]`).filter((g) => g.dataset.router.startsWith(`${n}/`));
    if (!routers.length) missing.push(`no router of ${room} on ${n}`);
    const row = document.querySelector(`#nodes tr[data-member="${attr(n)}"]`);
    if (!row) missing.push(`no nodes-table row for ${n}`);
    else if (row.dataset.state !== 'alive') missing.push(`${n} is ${row.dataset.state}`);
  }
  const links = q(`#graph g.link[data-room="${attr(room)}"]`).map((g) => ({ ...g.dataset }));
  const cross = links.filter((l) => l.cross === '1' && nodes.includes(l.fromNode) && nodes.includes(l.toNode)
    && l.fromNode !== l.toNode && Number(l.hops) >= 1);
  if (!cross.length) missing.push(`no pipe link of ${room} between ${nodes.join(' and ')}: ${JSON.stringify(links)}`);
  const row = document.querySelector(`#rooms tr[data-room="${attr(room)}"]`);
  if (!row) {
    missing.push(`no rooms-table row for ${room}`);
  } else {
    if (Number(row.dataset.participants) < participants) missing.push(`${room}: ${row.dataset.participants} participants`);
    const on = row.dataset.nodes.split(',');
    for (const n of nodes) if (!on.includes(n)) missing.push(`${room} not listed on ${n}`);
    if (row.dataset.homes.split(',').filter(Boolean).length !== 1) missing.push(`${room} homes: '${row.dataset.homes}'`);
  }
  const events = Object.fromEntries(q('#nodes tr[data-member]').map((r) => [r.dataset.member, Number(r.dataset.events)]));
  return {
    ok: missing.length === 0,
    missing,
    cross,
    events,
    participants: row ? Number(row.dataset.participants) : 0,
    homes: row?.dataset.homes,
    columns: q('#graph g.node').map((g) => g.dataset.node),
  };
}

async function main() {
  console.log(`dashboard e2e: ${base}/dashboard, room ${opts.room} over ${nodes.join(', ')}`);
  const browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args: CHROMIUM_ARGS, timeout: 60_000 });
  const pageErrors = [];
  const consoleLines = [];
  let ok = false;
  let page = null;
  try {
    page = await browser.newPage({ viewport: { width: 1400, height: 900 } });
    page.on('pageerror', (e) => pageErrors.push(String(e?.stack || e)));
    page.on('console', (m) => { consoleLines.push(`${m.type()}: ${m.text()}`); if (consoleLines.length > 50) consoleLines.shift(); });
    await page.goto(`${base}/dashboard`, { waitUntil: 'load', timeout: opts.timeout * 1000 });
    const title = await page.title();
    if (title !== 'Mafalda cluster') throw new Error(`/dashboard served a page titled '${title}'`);

    const deadline = Date.now() + opts.timeout * 1000;
    let seen;
    for (;;) {
      seen = await page.evaluate(look, { room: opts.room, nodes, participants: opts.participants });
      if (seen.ok) break;
      if (Date.now() > deadline) {
        const sources = await page.evaluate(() => window.dashboard?.sources());
        throw new Error(`not within ${opts.timeout} s: ${seen.missing.join('; ')}\n  columns ${seen.columns.join(', ')}\n  streams ${JSON.stringify(sources)}`);
      }
      await sleep(250);
    }
    console.log(`  the picture is complete after ${secs(Date.now() - t0)} s: columns ${seen.columns.join(', ')}; `
      + `${seen.participants} participants, home ${seen.homes}`);
    for (const l of seen.cross) console.log(`  pipe link ${l.from} -> ${l.to}: ${l.hops} producer(s)`);

    // Live: every node's stream goes on.
    const before = seen.events;
    await sleep(3000);
    const after = (await page.evaluate(look, { room: opts.room, nodes, participants: opts.participants })).events;
    const stuck = nodes.filter((n) => !((after[n] ?? 0) - (before[n] ?? 0) >= 2));
    console.log(`  events in 3 s: ${nodes.map((n) => `${n} ${before[n]} -> ${after[n]}`).join(', ')}`);
    if (stuck.length) throw new Error(`no live updates from ${stuck.join(', ')}`);
    if (pageErrors.length) throw new Error(`page errors:\n${pageErrors.join('\n')}`);

    if (opts.screenshot) {
      await page.screenshot({ path: opts.screenshot, fullPage: true });
      console.log(`  screenshot: ${opts.screenshot}`);
    }
    ok = true;
  } catch (e) {
    console.error(`dashboard e2e FAILED: ${e.message}`);
    if (pageErrors.length) console.error(`page errors:\n  ${pageErrors.join('\n  ')}`);
    console.error(`console (last lines):\n  ${consoleLines.join('\n  ')}`);
    if (page && opts.screenshot) {
      try {
        await page.screenshot({ path: opts.screenshot, fullPage: true });
        console.error(`  screenshot of the failure: ${opts.screenshot}`);
      } catch { /* the page is gone */ }
    }
  } finally {
    await Promise.race([browser.close(), sleep(10_000)]);
  }
  console.log(`dashboard e2e: ${ok ? 'PASS' : 'FAIL'} in ${secs(Date.now() - t0)} s`);
  process.exit(ok ? 0 : 1);
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
