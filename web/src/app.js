// Mafalda demo page: join a room, publish camera + microphone, show every
// other participant. Speaks docs/protocol.md section 1 over /ws.
//
// URL: /?room=NAME&name=DISPLAY[&video=0][&send=0][&res=WxH][&fps=N][&stats=0]
//
// Test hook (window.mafalda):
//   ready          Promise resolved once joined (and published, unless send=0)
//   isReady        boolean mirror of `ready`
//   state          'idle' | 'connecting' | 'joining' | 'publishing' | 'ready' | 'left' | 'disconnected' | 'failed'
//   peerId         our peer id once joined
//   errors         [{ at, where, code, message }] signalling / media errors
//   inboundStats() [{ peerId, displayName, kind, producerId, consumerId, paused,
//                     framesDecoded, packetsReceived, bytesReceived }]
//   outboundStats() [{ kind, producerId, packetsSent, bytesSent, framesEncoded }]
//   peers()        [{ peerId, displayName }] other participants currently known
//   leave()        send `leave` and tear everything down

import { Device } from 'mediasoup-client';
import { Signalling } from './signalling.js';

// ---------------------------------------------------------------- helpers

function deferred() {
  let resolve;
  let reject;
  const promise = new Promise((res, rej) => { resolve = res; reject = rej; });
  return { promise, resolve, reject };
}

function el(tag, attrs = {}, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === 'class') e.className = v;
    else if (k === 'text') e.textContent = v;
    else e.setAttribute(k, v);
  }
  for (const c of children) e.append(c);
  return e;
}

function parseParams() {
  const q = new URLSearchParams(location.search);
  const flag = (name, dflt) => {
    const v = q.get(name);
    if (v === null) return dflt;
    return !['0', 'false', 'no', 'off'].includes(v.toLowerCase());
  };
  let width = 640;
  let height = 480;
  const res = q.get('res');
  if (res && /^\d+x\d+$/.test(res)) {
    [width, height] = res.split('x').map(Number);
  }
  const fps = Number(q.get('fps')) || undefined;
  return {
    room: q.get('room') || '',
    name: q.get('name') || `guest-${Math.random().toString(36).slice(2, 6)}`,
    video: flag('video', true),
    audio: flag('audio', true),
    send: flag('send', true),
    stats: flag('stats', true),
    width,
    height,
    fps,
  };
}

// Benign races: the producer/consumer vanished while we were working on it.
const GONE_CODES = new Set(['unknown_producer', 'unknown_consumer', 'socket_closed']);

// ---------------------------------------------------------------- state

const params = parseParams();

const readyD = deferred();
readyD.promise.catch(() => {}); // observed through the hook; avoid unhandled noise

const hook = {
  ready: readyD.promise,
  isReady: false,
  state: 'idle',
  peerId: null,
  roomId: null,
  errors: [],
  log: [],
  inboundStats,
  outboundStats,
  peers: () => [...peers.values()].map((p) => ({ peerId: p.peerId, displayName: p.displayName })),
  leave,
};
window.mafalda = hook;

let sig = null;
let device = null;
let sendTransport = null;
let recvTransport = null;
let localStream = null;
let leaving = false;
const recvReady = deferred();
recvReady.promise.catch(() => {});

/** peerId -> { peerId, displayName, stream, tile, video, badges, consumers: Set<consumerId> } */
const peers = new Map();
/** producerId -> { producerId, peerId, kind, paused, closed, consumerId } */
const remoteProducers = new Map();
/** consumerId -> { consumer, producerId, peerId, kind } */
const consumers = new Map();
/** consumer ids the server closed before we finished setting them up */
const closedConsumerIds = new Set();
/** local producers: kind -> Producer */
const localProducers = new Map();

// ---------------------------------------------------------------- UI

const $ = (id) => document.getElementById(id);

function setState(s, detail = '') {
  hook.state = s;
  const st = $('status');
  if (st) {
    st.textContent = detail ? `${s}: ${detail}` : s;
    st.dataset.state = s;
  }
}

function logLine(msg) {
  const line = `${new Date().toISOString().slice(11, 23)} ${msg}`;
  hook.log.push(line);
  if (hook.log.length > 500) hook.log.shift();
  console.log(`[mafalda] ${msg}`);
}

function recordError(where, err) {
  const entry = {
    at: new Date().toISOString(),
    where,
    code: err?.code || err?.name || 'error',
    message: err?.message || String(err),
  };
  hook.errors.push(entry);
  logLine(`ERROR ${where}: ${entry.code}: ${entry.message}`);
  const box = $('errors');
  if (box) {
    box.hidden = false;
    box.append(el('div', { text: `${where}: ${entry.message}` }));
  }
}

function makeTile(label, isLocal) {
  const video = el('video', { autoplay: '', playsinline: '' });
  video.muted = isLocal; // remote tiles play audio unless autoplay is refused
  const name = el('div', { class: 'name', text: label });
  const badges = el('div', { class: 'badges' });
  const stats = el('div', { class: 'stats' });
  const avatar = el('div', { class: 'avatar', text: (label || '?').slice(0, 1).toUpperCase() });
  const tile = el('div', { class: `tile no-video${isLocal ? ' local' : ''}` },
    avatar, video, name, badges, stats);
  if (isLocal) $('grid').prepend(tile);
  else $('grid').append(tile);
  return { tile, video, name, badges, stats };
}

function playVideo(video) {
  const p = video.play();
  if (!p) return;
  p.catch((err) => {
    if (err.name === 'NotAllowedError' && !video.muted) {
      // Autoplay with sound refused: play muted, offer a button.
      video.muted = true;
      video.play().catch(() => {});
      $('unmute').hidden = false;
    }
  });
}

function refreshPeerTile(peer) {
  const tracks = peer.stream.getTracks();
  const hasVideo = tracks.some((t) => t.kind === 'video');
  peer.ui.tile.classList.toggle('no-video', !hasVideo);
  // Re-assign so the element picks up added/removed tracks reliably.
  peer.ui.video.srcObject = tracks.length ? peer.stream : null;
  if (tracks.length) playVideo(peer.ui.video);
  const marks = [];
  for (const cid of peer.consumers) {
    const c = consumers.get(cid);
    if (!c) continue;
    const p = remoteProducers.get(c.producerId);
    marks.push(`${c.kind === 'audio' ? 'mic' : 'cam'}${p?.paused ? ' (paused)' : ''}`);
  }
  peer.ui.badges.textContent = marks.join(' · ');
}

// ---------------------------------------------------------------- peers

function addPeer(peerId, displayName) {
  let peer = peers.get(peerId);
  if (peer) {
    if (displayName && peer.displayName !== displayName) {
      peer.displayName = displayName;
      peer.ui.name.textContent = displayName;
    }
    return peer;
  }
  const label = displayName || peerId.slice(0, 8);
  peer = {
    peerId,
    displayName: label,
    stream: new MediaStream(),
    consumers: new Set(),
    ui: makeTile(label, false),
  };
  peer.ui.tile.dataset.peerId = peerId;
  peers.set(peerId, peer);
  updateCount();
  return peer;
}

function removePeer(peerId) {
  const peer = peers.get(peerId);
  for (const p of remoteProducers.values()) {
    if (p.peerId === peerId) p.closed = true;
  }
  if (!peer) return;
  for (const cid of [...peer.consumers]) closeConsumer(cid);
  peer.ui.video.srcObject = null;
  peer.ui.tile.remove();
  peers.delete(peerId);
  updateCount();
}

function updateCount() {
  const c = $('count');
  if (c) c.textContent = `${peers.size + 1} in room`;
}

// ---------------------------------------------------------------- consuming

function noteProducer(info) {
  const { producerId, peerId, kind } = info;
  if (!producerId || remoteProducers.has(producerId)) return;
  if (peerId === hook.peerId) return; // never consume ourselves
  const p = { producerId, peerId, kind, paused: !!info.paused, closed: false, consumerId: null };
  remoteProducers.set(producerId, p);
  addPeer(peerId);
  consumeProducer(p).catch((err) => {
    if (p.closed || leaving || GONE_CODES.has(err?.code)) {
      logLine(`consume ${producerId} abandoned: ${err?.message || err}`);
    } else {
      recordError(`consume ${kind} of ${peerId}`, err);
    }
  });
}

async function consumeProducer(p) {
  // Events may arrive before the recv transport exists: wait for it.
  const transport = await recvReady.promise;
  if (p.closed) return;
  const r = await sig.request('consume', {
    transportId: transport.id,
    producerId: p.producerId,
    rtpCapabilities: device.recvRtpCapabilities,
  });
  const consumer = await transport.consume({
    id: r.id,
    producerId: r.producerId,
    kind: r.kind,
    rtpParameters: r.rtpParameters,
    streamId: p.peerId, // group a peer's audio + video for lip sync
    appData: { peerId: p.peerId },
  });
  if (p.closed || closedConsumerIds.has(consumer.id) || leaving) {
    consumer.close();
    return;
  }
  if (typeof r.producerPaused === 'boolean') p.paused = r.producerPaused;
  p.consumerId = consumer.id;
  consumers.set(consumer.id, { consumer, producerId: p.producerId, peerId: p.peerId, kind: consumer.kind });
  const peer = addPeer(p.peerId);
  peer.consumers.add(consumer.id);
  peer.stream.addTrack(consumer.track);
  consumer.on('transportclose', () => closeConsumer(consumer.id));
  consumer.on('trackended', () => closeConsumer(consumer.id));
  refreshPeerTile(peer);
  // Consumers are created paused server-side: resume now that we are ready.
  await sig.request('resumeConsumer', { consumerId: consumer.id });
  logLine(`consuming ${consumer.kind} of ${peer.displayName} (${consumer.id})`);
}

function closeConsumer(consumerId) {
  const c = consumers.get(consumerId);
  if (!c) return;
  consumers.delete(consumerId);
  try { c.consumer.close(); } catch { /* already closed */ }
  const p = remoteProducers.get(c.producerId);
  if (p) p.consumerId = null;
  const peer = peers.get(c.peerId);
  if (peer) {
    peer.consumers.delete(consumerId);
    peer.stream.removeTrack(c.consumer.track);
    refreshPeerTile(peer);
  }
}

// ---------------------------------------------------------------- events

function onEvent(name, data) {
  try {
    switch (name) {
      case 'peerJoined':
        addPeer(data.peerId, data.displayName);
        logLine(`peer joined: ${data.displayName} (${data.peerId})`);
        break;
      case 'peerLeft':
        logLine(`peer left: ${data.peerId}`);
        removePeer(data.peerId);
        break;
      case 'newProducer':
        noteProducer(data);
        break;
      case 'producerClosed': {
        const p = remoteProducers.get(data.producerId);
        if (p) {
          p.closed = true;
          if (p.consumerId) closeConsumer(p.consumerId);
        }
        break;
      }
      case 'consumerClosed': {
        closedConsumerIds.add(data.consumerId);
        const p = remoteProducers.get(data.producerId);
        if (p) p.closed = true;
        closeConsumer(data.consumerId);
        break;
      }
      case 'producerPaused':
      case 'producerResumed': {
        const p = remoteProducers.get(data.producerId);
        if (p) {
          p.paused = name === 'producerPaused';
          const peer = peers.get(p.peerId);
          if (peer) refreshPeerTile(peer);
        }
        break;
      }
      case 'reconnect':
        // Our media worker was lost: the node removes us and closes the
        // socket; we then rejoin from scratch (see onClose).
        reconnectRequested = true;
        logLine(`server asked us to reconnect: ${data.reason || ''}`);
        break;
      default:
        logLine(`ignoring unknown event ${name}`);
    }
  } catch (err) {
    recordError(`event ${name}`, err);
  }
}

// ---------------------------------------------------------------- transports

async function createTransport(direction) {
  const info = await sig.request('createWebRtcTransport', { direction });
  const opts = {
    id: info.id,
    iceParameters: info.iceParameters,
    iceCandidates: info.iceCandidates,
    dtlsParameters: info.dtlsParameters,
    iceServers: [],
  };
  const transport = direction === 'send'
    ? device.createSendTransport(opts)
    : device.createRecvTransport(opts);

  transport.on('connect', ({ dtlsParameters }, callback, errback) => {
    sig.request('connectWebRtcTransport', { transportId: transport.id, dtlsParameters })
      .then(() => callback(), (err) => { recordError(`connect ${direction} transport`, err); errback(err); });
  });
  if (direction === 'send') {
    transport.on('produce', ({ kind, rtpParameters, appData }, callback, errback) => {
      sig.request('produce', { transportId: transport.id, kind, rtpParameters, appData })
        .then(({ id }) => callback({ id }), (err) => { recordError(`produce ${kind}`, err); errback(err); });
    });
  }
  transport.on('connectionstatechange', (s) => {
    logLine(`${direction} transport ${s}`);
    if (s === 'failed' && !leaving) {
      recordError(`${direction} transport`, { code: 'ice_dtls_failed', message: 'connection state failed' });
    }
  });
  return transport;
}

async function publish() {
  if (!params.audio && !params.video) return;
  const video = params.video
    ? {
        width: { ideal: params.width },
        height: { ideal: params.height },
        ...(params.fps ? { frameRate: { ideal: params.fps, max: params.fps } } : {}),
      }
    : false;
  localStream = await navigator.mediaDevices.getUserMedia({ audio: params.audio, video });
  const me = makeTile(`${params.name} (you)`, true);
  me.tile.classList.toggle('no-video', !params.video);
  me.video.srcObject = localStream;
  playVideo(me.video);
  for (const track of localStream.getTracks()) {
    if (!device.canProduce(track.kind)) {
      recordError(`produce ${track.kind}`, { code: 'cannot_produce', message: `device cannot produce ${track.kind}` });
      continue;
    }
    const producer = await sendTransport.produce({ track, appData: { source: track.kind === 'video' ? 'camera' : 'mic' } });
    localProducers.set(track.kind, producer);
    logLine(`producing ${track.kind} (${producer.id})`);
  }
  me.badges.textContent = [...localProducers.keys()].map((k) => (k === 'audio' ? 'mic' : 'cam')).join(' · ');
}

// ---------------------------------------------------------------- stats

async function inboundStats() {
  const out = [];
  for (const [consumerId, c] of consumers) {
    const p = remoteProducers.get(c.producerId);
    const rec = {
      peerId: c.peerId,
      displayName: peers.get(c.peerId)?.displayName ?? null,
      kind: c.kind,
      producerId: c.producerId,
      consumerId,
      paused: !!p?.paused,
      framesDecoded: 0,
      packetsReceived: 0,
      bytesReceived: 0,
      frameWidth: 0,
      frameHeight: 0,
    };
    try {
      const report = await c.consumer.getStats();
      report.forEach((s) => {
        if (s.type !== 'inbound-rtp') return;
        rec.framesDecoded += s.framesDecoded || 0;
        rec.packetsReceived += s.packetsReceived || 0;
        rec.bytesReceived += s.bytesReceived || 0;
        if (s.frameWidth) { rec.frameWidth = s.frameWidth; rec.frameHeight = s.frameHeight; }
      });
    } catch (err) {
      rec.error = String(err?.message || err);
    }
    out.push(rec);
  }
  return out;
}

async function outboundStats() {
  const out = [];
  for (const [kind, producer] of localProducers) {
    const rec = { kind, producerId: producer.id, packetsSent: 0, bytesSent: 0, framesEncoded: 0 };
    try {
      const report = await producer.getStats();
      report.forEach((s) => {
        if (s.type !== 'outbound-rtp') return;
        rec.packetsSent += s.packetsSent || 0;
        rec.bytesSent += s.bytesSent || 0;
        rec.framesEncoded += s.framesEncoded || 0;
      });
    } catch (err) {
      rec.error = String(err?.message || err);
    }
    out.push(rec);
  }
  return out;
}

// Small on-tile overlay: decoded fps and resolution, every 2 s.
const lastFrames = new Map();
async function updateOverlays() {
  const stats = await inboundStats();
  const perPeer = new Map();
  for (const s of stats) {
    if (s.kind !== 'video') continue;
    const prev = lastFrames.get(s.consumerId) ?? s.framesDecoded;
    lastFrames.set(s.consumerId, s.framesDecoded);
    const fps = Math.max(0, (s.framesDecoded - prev) / 2);
    perPeer.set(s.peerId, `${s.frameWidth}x${s.frameHeight} ${fps.toFixed(0)} fps`);
  }
  for (const peer of peers.values()) peer.ui.stats.textContent = perPeer.get(peer.peerId) ?? '';
}

// ---------------------------------------------------------------- lifecycle

async function leave() {
  if (leaving) return;
  leaving = true;
  try {
    if (sig && !sig.closed) await sig.request('leave', undefined, 3000);
  } catch (err) {
    logLine(`leave: ${err.message}`);
  }
  teardown();
  setState('left');
}

function teardown() {
  for (const cid of [...consumers.keys()]) closeConsumer(cid);
  for (const p of localProducers.values()) { try { p.close(); } catch { /* ignore */ } }
  localProducers.clear();
  try { sendTransport?.close(); } catch { /* ignore */ }
  try { recvTransport?.close(); } catch { /* ignore */ }
  localStream?.getTracks().forEach((t) => t.stop());
  sig?.close();
}

let reconnectRequested = false;

async function main() {
  setState('connecting');
  const wsUrl = `${location.protocol === 'https:' ? 'wss' : 'ws'}://${location.host}/ws`;
  sig = new Signalling(wsUrl, {
    onEvent,
    onProtocolError: (msg) => recordError('signalling', { code: 'protocol', message: msg }),
    onClose: (ev) => {
      if (reconnectRequested && !leaving) {
        leaving = true;
        setState('reconnecting', 'media worker lost');
        teardown();
        setTimeout(() => location.reload(), 500);
        return;
      }
      if (leaving || hook.state === 'failed') return;
      recordError('signalling', { code: 'socket_closed', message: `socket closed by server (code ${ev.code} ${ev.reason || ''})` });
      setState('disconnected', `code ${ev.code}`);
      leaving = true;
      teardown();
    },
  });
  await sig.open();

  setState('joining');
  const j = await sig.request('join', { room: params.room, displayName: params.name, protocolVersion: 1 });
  hook.peerId = j.peerId;
  hook.roomId = j.roomId;
  logLine(`joined room ${j.roomId} as ${j.peerId}`);
  for (const p of j.peers || []) if (p.peerId !== j.peerId) addPeer(p.peerId, p.displayName);
  for (const p of j.producers || []) noteProducer(p);

  device = new Device();
  await device.load({ routerRtpCapabilities: j.routerRtpCapabilities });
  logLine(`device loaded (${device.handlerName})`);

  try {
    recvTransport = await createTransport('recv');
    recvReady.resolve(recvTransport);
  } catch (err) {
    recvReady.reject(err);
    throw err;
  }

  if (params.send) {
    setState('publishing');
    sendTransport = await createTransport('send');
    await publish();
  }

  hook.isReady = true;
  setState('ready', `${params.room} as ${params.name}`);
  readyD.resolve(true);
}

function showJoinForm() {
  $('join-form').hidden = false;
  $('join-name').value = params.name;
  $('join-form').addEventListener('submit', (ev) => {
    ev.preventDefault();
    const q = new URLSearchParams(location.search);
    q.set('room', $('join-room').value.trim() || 'demo');
    q.set('name', $('join-name').value.trim() || params.name);
    location.search = q.toString();
  });
}

function init() {
  $('unmute').addEventListener('click', () => {
    for (const peer of peers.values()) { peer.ui.video.muted = false; playVideo(peer.ui.video); }
    $('unmute').hidden = true;
  });
  $('leave').addEventListener('click', () => leave());
  window.addEventListener('pagehide', () => { leaving = true; sig?.close(); });

  if (!params.room) {
    setState('idle', 'choose a room');
    showJoinForm();
    readyD.reject(new Error('no room in URL'));
    return;
  }
  $('room-label').textContent = `room ${params.room}`;
  $('leave').hidden = false;
  updateCount();
  if (params.stats) setInterval(() => { updateOverlays().catch(() => {}); }, 2000);
  main().catch((err) => {
    recordError('join', err);
    setState('failed', err.message);
    readyD.reject(err);
  });
}

if (document.readyState === 'loading') document.addEventListener('DOMContentLoaded', init);
else init();
