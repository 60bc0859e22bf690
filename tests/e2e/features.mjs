#!/usr/bin/env node
// End-to-end test of the demo page's features with 3 headless Chromium
// instances in one room, on a node with 2 workers and spread placement
// (`--expect-workers 2` checks they use both): 3 peers on 2 workers, so
// browser-1 shares no worker with at least one of the others, and its
// simulcast video, its DataChannel and its audio (to the active speaker
// observer) cross a pipe between workers:
//
//   1. simulcast: every page sends its camera as 3 VP8 layers; browser-2
//      picks the lowest layer of browser-1's video with the tile's select
//      (`setConsumerPreferredLayers`), and its decoded frames of it
//      (`inbound-rtp` frameWidth x frameHeight) must become smaller than
//      browser-3's of the same video (left at the highest layer: at most
//      half its width) and than its own before; picking "auto" again must
//      bring the highest layer back;
//   2. chat: every page sends one message on its "chat" DataChannel; each
//      must appear in both other pages' chat boxes, with the sender's name;
//   3. active speaker: browser-1 sends a generated tone (`mic=tone`: tone
//      bursts over a faint noise floor), the others digital silence
//      (`mic=silent`); browser-2 and browser-3 must be told (`activeSpeaker`)
//      that browser-1 speaks, outline its tile, and keep it that way.
//
// Every check is a bounded wait (`eventually`); no page may record an error.
//
//   node tests/e2e/features.mjs [--url http://127.0.0.1:3000] [--res 320x240]
//        [--fps 15] [--timeout 60] [--expect-workers 2]
//
// Needs a node with `[rooms] active_speaker = true` (scripts/e2e.sh writes
// it). Run inside a loopback-only network namespace (scripts/e2e.sh does).

import { Participant, parseArgs, randomRoom, sleep, judge, formatTable, eventually } from './lib.mjs';

const opts = parseArgs({
  url: 'http://127.0.0.1:3000',
  res: '320x240',
  fps: 15,
  timeout: 60, // seconds, for each feature's check
  joinTimeout: 60, // seconds, per browser, launch + join + publish
  room: '',
  expectWorkers: 0, // if > 0: the participants must sit on that many workers
  hold: 3, // seconds the active speaker must stay the loud participant
});

const room = opts.room || randomRoom('e2e-features');
const baseUrl = opts.url.replace(/\/+$/, '');
const [fullW] = opts.res.split('x').map(Number);
// (Chromium would send only the lowest simulcast layer at 320x240: lib.mjs's
// CHROMIUM_ARGS lift its limit of layers by size.)
const mic = ['tone', 'silent', 'silent'];
const parts = mic.map((m, i) => new Participant(`browser-${i + 1}`, {
  baseUrl, room, res: opts.res, fps: opts.fps, query: { mic: m, simulcast: 1 },
}));
const [loud, low, high] = parts; // browser-1 speaks; browser-2 asks for the low layer; browser-3 stays high
const t0 = Date.now();
const secs = (ms) => (ms / 1000).toFixed(1);
const T = () => opts.timeout * 1000;
const results = [];

function step(name, ok, detail) {
  results.push({ name, ok, detail });
  console.log(`  [${secs(Date.now() - t0)} s] ${ok ? 'ok  ' : 'FAIL'} ${name}${detail ? `: ${detail}` : ''}`);
}

/** browser `p`'s inbound video stats of `from`'s video. */
async function videoOf(p, from) {
  const all = await p.page.evaluate(() => window.mafalda.inboundStats());
  return all.find((s) => s.kind === 'video' && s.peerId === from.peerId) || null;
}

async function pageErrors() {
  const out = [];
  for (const p of parts) {
    const errs = await p.page.evaluate(() => window.mafalda.errors).catch((e) => [{ message: String(e) }]);
    for (const e of errs) out.push(`${p.name}: ${e.where}: ${e.code}: ${e.message}`);
  }
  return out;
}

async function checkPlacement() {
  const status = await (await fetch(`${baseUrl}/api/status`)).json();
  const used = status.workerDetails.filter((w) => w.peers > 0);
  const detail = status.workerDetails.map((w) => `w${w.slot}: ${w.peers} peers, ${w.pipeProducers} pipe producers`).join('; ');
  step(`participants on >= ${opts.expectWorkers} workers`, used.length >= opts.expectWorkers, detail);
}

/** Every page decodes both others' video and receives their audio (2 rising samples). */
async function checkMedia() {
  let prev = await Promise.all(parts.map((p) => p.sample()));
  let streak = 0;
  let verdicts = [];
  await eventually('every page receives every other\'s video and audio', async () => {
    await sleep(1500);
    const cur = await Promise.all(parts.map((p) => p.sample()));
    verdicts = parts.map((p, i) => judge(prev[i], cur[i], parts.filter((q) => q !== p).map((q) => q.name)));
    prev = cur;
    streak = verdicts.every((v) => v.ok) ? streak + 1 : 0;
    return { ok: streak >= 2, detail: verdicts.flatMap((v, i) => v.problems.map((x) => `${parts[i].name}: ${x}`)) };
  }, { timeoutMs: T(), intervalMs: 0 });
  parts.forEach((p, i) => console.log(formatTable(`${p.name} receives:`, verdicts[i].rows)));
  step('media flows between every pair', true);
}

async function checkSimulcast() {
  // The consumers of browser-1's video are simulcast (3 spatial layers).
  for (const p of [low, high]) {
    const v = await eventually(`${p.name} consumes ${loud.name}'s video with 3 spatial layers`, async () => {
      const s = await videoOf(p, loud);
      return { ok: s?.spatialLayers === 3, detail: s };
    }, { timeoutMs: T() });
    step(`${p.name}: ${loud.name}'s video has ${v.detail.spatialLayers} spatial layers`, true);
  }
  // Both start on the highest layer once the bandwidth estimate allows it
  // (within seconds on loopback): the full size, or, should Chromium scale
  // its layers down for CPU, at least more than half of it (more than the
  // middle layer's full size).
  const size = (s) => `${s?.frameWidth}x${s?.frameHeight}`;
  const topLayer = (s) => s?.frameWidth > fullW / 2;
  let before = null;
  await eventually(`${low.name} and ${high.name} decode ${loud.name}'s highest layer`, async () => {
    const [a, b] = [await videoOf(low, loud), await videoOf(high, loud)];
    before = a;
    return { ok: topLayer(a) && topLayer(b), detail: { [low.name]: size(a), [high.name]: size(b) } };
  }, { timeoutMs: T() });
  step(`both decode ${loud.name}'s highest layer`, true, size(before));

  // browser-2 picks the lowest layer with the tile's select.
  const sel = `.tile[data-peer-id="${loud.peerId}"] select.layer`;
  await low.page.selectOption(sel, '0', { timeout: 10_000 });
  let last = null;
  await eventually(`${low.name} decodes a smaller ${loud.name} video than ${high.name}`, async () => {
    const [a, b] = [await videoOf(low, loud), await videoOf(high, loud)];
    const framesRising = last ? a.framesDecoded > last.framesDecoded : false;
    last = a;
    const ok = a.preferredSpatialLayer === 0 && a.frameWidth > 0 && a.frameWidth * 2 <= b.frameWidth
      && a.frameWidth < before.frameWidth && framesRising;
    return { ok, detail: { [low.name]: `${size(a)} (layer ${a.preferredSpatialLayer}, frames ${a.framesDecoded})`, [high.name]: size(b) } };
  }, { timeoutMs: T(), intervalMs: 1000 });
  const [a, b] = [await videoOf(low, loud), await videoOf(high, loud)];
  step(`lowest layer: ${low.name} gets ${size(a)}, ${high.name} ${size(b)} (before: ${size(before)})`, true);

  // Back to the highest ("auto").
  await low.page.selectOption(sel, '', { timeout: 10_000 });
  const back = await eventually(`${low.name} decodes ${loud.name}'s highest layer again`, async () => {
    const s = await videoOf(low, loud);
    return { ok: s.preferredSpatialLayer === null && topLayer(s), detail: size(s) };
  }, { timeoutMs: T() });
  step(`auto again: ${low.name} gets ${back.detail}`, true);
}

async function checkChat() {
  // Every page's own channel is open and it consumes both others' channels.
  await eventually('every page has its chat channel open and consumes the 2 others\'', async () => {
    const st = await Promise.all(parts.map((p) => p.page.evaluate(() => ({
      open: window.mafalda.chatOpen,
      channels: window.mafalda.chatChannels(),
    }))));
    const ok = st.every((s) => s.open && s.channels.filter((c) => c.readyState === 'open').length === 2);
    return { ok, detail: st.map((s, i) => `${parts[i].name}: own ${s.open ? 'open' : 'closed'}, others ${s.channels.map((c) => `${c.displayName}:${c.readyState}`).join(',')}`) };
  }, { timeoutMs: T() });
  step('chat channels open (3 own, 6 consumed)', true);

  const nonce = Math.random().toString(36).slice(2, 8);
  const text = (p) => `hello from ${p.name} ${nonce}`;
  for (const p of parts) {
    // Typed into the chat box and sent with the button, as a user would.
    await p.page.fill('#chat-input', text(p));
    await p.page.click('#chat-send');
  }
  await eventually('every chat message shows in both other pages with its sender\'s name', async () => {
    const missing = [];
    for (const p of parts) {
      const lines = await p.page.$$eval('#chat-log li', (lis) => lis.map((li) => ({
        from: li.dataset.from, text: li.querySelector('.text')?.textContent, local: li.classList.contains('local'),
      })));
      for (const q of parts) {
        if (q === p) continue;
        if (!lines.some((l) => !l.local && l.from === q.name && l.text === text(q))) missing.push(`${p.name} lacks ${q.name}'s`);
      }
    }
    return { ok: missing.length === 0, detail: missing };
  }, { timeoutMs: T() });
  step('each message reached both others, shown with its sender\'s name', true);
}

async function checkActiveSpeaker() {
  const listeners = [low, high];
  const speakerOf = (p) => p.page.evaluate(() => ({
    peerId: window.mafalda.activeSpeaker,
    events: window.mafalda.speakerEvents.map((e) => e.displayName ?? e.peerId),
    outlined: [...document.querySelectorAll('.tile.speaking')].map((t) => t.dataset.peerId),
  }));
  const named = async () => {
    const st = await Promise.all(listeners.map(speakerOf));
    const ok = st.every((s) => s.peerId === loud.peerId && s.outlined.length === 1 && s.outlined[0] === loud.peerId);
    return { ok, detail: st.map((s, i) => `${listeners[i].name}: events [${s.events.join(', ')}], outlined ${s.outlined.length}`) };
  };
  const r = await eventually(`${low.name} and ${high.name} are told ${loud.name} speaks and outline its tile`, named, { timeoutMs: T() });
  step(`active speaker ${loud.name} (tone), the silent ones never win`, true, r.detail.join('; '));
  // It stays so: the silent participants never take over.
  const end = Date.now() + opts.hold * 1000;
  while (Date.now() < end) {
    const h = await named();
    if (!h.ok) throw new Error(`the active speaker changed from ${loud.name}: ${h.detail.join('; ')}`);
    await sleep(500);
  }
  step(`still ${loud.name} ${opts.hold} s later`, true);
  const self = await speakerOf(loud);
  step(`${loud.name} is not told about itself`, !self.events.length || !self.events.includes(loud.name), `events [${self.events.join(', ')}]`);
}

async function main() {
  console.log(`features e2e: ${parts.length} chromium instances, room ${room}, ${opts.res}@${opts.fps} -> ${baseUrl}`);
  await Promise.all(parts.map(async (p) => {
    await p.launch();
    await p.join(opts.joinTimeout * 1000);
    console.log(`  ${p.name} (mic=${p.opts.query.mic}): launched in ${p.timings.launchMs} ms, joined+publishing in ${p.timings.joinMs} ms (peer ${p.peerId})`);
  }));
  console.log(`all joined after ${secs(Date.now() - t0)} s`);
  if (opts.expectWorkers > 0) await checkPlacement();
  await checkMedia();
  await checkSimulcast();
  await checkChat();
  await checkActiveSpeaker();
  const errs = await pageErrors();
  step('no page recorded an error', errs.length === 0, errs.join('; '));
  return results.every((r) => r.ok);
}

let ok = false;
const watchdog = setTimeout(() => {
  console.error('features e2e: watchdog fired');
  process.exit(3);
}, (opts.joinTimeout + 6 * opts.timeout + 60) * 1000);
try {
  ok = await main();
} catch (e) {
  console.error(`features e2e: FAILED: ${e?.stack || e}`);
}
if (!ok) for (const p of parts) if (p.page) console.log(await p.diagnostics());
await Promise.all(parts.map((p) => (p.page ? p.leave() : null)));
await Promise.all(parts.map((p) => p.close()));
clearTimeout(watchdog);
console.log(`features e2e: ${ok ? 'PASS' : 'FAIL'} (${secs(Date.now() - t0)} s)`);
process.exit(ok ? 0 : 1);
