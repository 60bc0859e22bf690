// Mafalda demo page: join a room, publish camera + microphone, show every
// other participant. Speaks docs/protocol.md section 1 over /ws.
//
// URL: /?room=NAME&name=DISPLAY[&video=0][&audio=0][&send=0][&res=WxH][&fps=N][&stats=0]
//      [&simulcast=0][&chat=0][&mic=device|silent|tone][&token=JWT]
//      [&rejoin=N][&bounce=N]   (set by the page itself when it moves, see below)
//
// Access token: `join` carries one (docs/protocol.md). With `token=` in the
// URL the page uses it (its identity is the display name unless it grants
// `rename`); otherwise it asks the node it signals through for one,
// GET /api/dev-token?room=..&identity=<name>&grant=publish&grant=subscribe&grant=rename
// (a node in `[auth] mode = "dev"`, as `make run` runs). A node that serves
// no dev tokens answers 404: the page then says it needs `?token=...`.
//
// Features:
//   - the camera is sent as 3 VP8 simulcast layers (1/4, 1/2 and full
//     resolution; `simulcast=0`: one layer). The camera is asked for
//     1280x720 by default (640x480 without simulcast): Chromium sends fewer
//     layers from smaller pictures (two below 960x540, one below 480x270,
//     the lowest ones). Each remote video tile has a
//     select choosing the layer the node sends it (`setConsumerPreferredLayers`);
//   - a chat box: one DataChannel (label "chat") per participant that sends,
//     every other participant's consumed (`produceData` / `consumeData`);
//     each message is shown with its sender's name (`chat=0`: no chat);
//   - the active speaker's tile is outlined (`activeSpeaker`, sent when the
//     node runs with `[rooms] active_speaker = true`, as `make run` does);
//   - `mic=silent` sends a silent generated track instead of the microphone,
//     `mic=tone` a generated test signal (tone bursts over a faint noise
//     floor), e.g. to see the active speaker follow the loudest participant.
//
// Moving between the nodes of a cluster (docs/protocol.md, "In a cluster"):
// once joined, the page reads /api/nodes (the signalling URLs of the nodes
// that take participants) and refreshes it every 30 s. Then:
//   - `reconnect` with a `url` (its node drains): it goes to the same page
//     on that node;
//   - `reconnect` without `url` (the worker or node carrying its media died;
//     the socket closes next): it rejoins through its own node, else another;
//   - the socket closing without `leave` (its node died): it rejoins through
//     another node, trying each in turn (a GET /healthz must answer), then
//     its own, again and again with backoff until one answers;
//   - `join` refused with `draining`: it goes to the error's `url`, else to
//     another node (`bounce` counts such refusals in a row and slows them).
// Going to another node is a navigation to http(s)://host:port/ of that
// node (derived from its ws URL) with the same query and `rejoin` plus one:
// the page joins afresh there, so its media stops for a second or two.
//
// Test hook (window.mafalda):
//   ready          Promise resolved once joined (and published, unless send=0)
//   isReady        boolean mirror of `ready`
//   state          'idle' | 'connecting' | 'joining' | 'publishing' | 'ready' | 'left' | 'disconnected'
//                  | 'failed' | 'reconnecting' (finding a node to rejoin through) | 'moving' (navigating there)
//   peerId         our peer id once joined
//   rejoins        how many times the page moved to rejoin (the `rejoin` query parameter)
//   via            the signalling URL the page joined through
//   tokenFrom      where the join's access token came from: 'url' (token=) or 'dev' (/api/dev-token)
//   node           that node's name, once /api/nodes answered
//   nodes          the signalling URLs the page would rejoin through (from /api/nodes)
//   servedBy       the address in the ICE candidates the page got: the node carrying its media
//                  (another node than `via`'s when the join spilled over)
//   errors         [{ at, where, code, message }] signalling / media errors
//   inboundStats() [{ peerId, displayName, kind, producerId, consumerId, paused,
//                     framesDecoded, packetsReceived, bytesReceived }]
//   outboundStats() [{ kind, producerId, packetsSent, bytesSent, framesEncoded }]
//   peers()        [{ peerId, displayName }] other participants currently known
//   leave()        send `leave` and tear everything down
//   (inboundStats() records also carry frameWidth, frameHeight, and for video
//    spatialLayers (layers the producer sends) and preferredSpatialLayer (null: highest))
//   setPreferredLayer(peerId, spatialLayer)  as the tile's select: the layer of that
//                  peer's video we want (null: highest); resolves once the node took it
//   chat           [{ at, peerId, from, text, local }] messages shown in the chat box
//   chatOpen       true once our own chat DataChannel is open (we can send)
//   sendChat(text) send a chat message (resolves false if the channel is not open)
//   chatChannels() [{ dataProducerId, peerId, displayName, readyState }] others' chat
//                  channels we consume
//   activeSpeaker  peerId of the last `activeSpeaker` event (null before any)
//   speakerEvents  [{ at, peerId, displayName }] every `activeSpeaker` event

import { Device } from 'mediasoup-client';
import { Signalling, AccessTokenError, fetchDevToken, tokenClaims } from './signalling.js';

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
  // Chromium sends all 3 simulcast layers only from 960x540 up (two below,
  // one below 480x270): simulcast asks the camera for 1280x720.
  const simulcast = flag('simulcast', true);
  let width = simulcast ? 1280 : 640;
  let height = simulcast ? 720 : 480;
  const res = q.get('res');
  if (res && /^\d+x\d+$/.test(res)) {
    [width, height] = res.split('x').map(Number);
  }
  const fps = Number(q.get('fps')) || undefined;
  const count = (name) => Math.max(0, Math.floor(Number(q.get(name)) || 0));
  const token = q.get('token') || '';
  let name = q.get('name') || `guest-${Math.random().toString(36).slice(2, 6)}`;
  // A given token without `rename` names us: the node uses its identity.
  const claims = token ? tokenClaims(token) : null;
  if (claims && typeof claims.sub === 'string' && claims.sub && !claims.grants?.rename) name = claims.sub;
  return {
    room: q.get('room') || '',
    name,
    token,
    video: flag('video', true),
    audio: flag('audio', true),
    send: flag('send', true),
    stats: flag('stats', true),
    simulcast,
    chat: flag('chat', true),
    mic: ['silent', 'tone'].includes(q.get('mic')) ? q.get('mic') : 'device',
    width,
    height,
    fps,
    rejoin: count('rejoin'),
    bounce: count('bounce'),
  };
}

// Benign races: the producer/consumer vanished while we were working on it.
const GONE_CODES = new Set(['unknown_producer', 'unknown_consumer', 'socket_closed']);
// A producer of a node that just went away is listed (and fails to consume)
// until the cluster declares that node down and the room drops it: a
// consume failure counts as an error only if the producer is still there
// this long after.
const CONSUME_GRACE_MS = 15_000;

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

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
  rejoins: params.rejoin,
  via: `${location.protocol === 'https:' ? 'wss' : 'ws'}://${location.host}/ws`,
  tokenFrom: null,
  node: null,
  nodes: [],
  servedBy: null,
  errors: [],
  log: [],
  inboundStats,
  outboundStats,
  peers: () => [...peers.values()].map((p) => ({ peerId: p.peerId, displayName: p.displayName })),
  leave,
  setPreferredLayer,
  chat: [],
  chatOpen: false,
  sendChat,
  chatChannels,
  activeSpeaker: null,
  speakerEvents: [],
};
window.mafalda = hook;

let sig = null;
let device = null;
let sendTransport = null;
let recvTransport = null;
let localStream = null;
let leaving = false;
/** Set once the page is on its way to another node (or the same one, afresh). */
let moving = false;
/** Set once the page navigates to the node it rejoins through. */
let navigating = false;
/** This node's signalling URLs: as the page reached it, and as it names itself. */
const ownUrls = new Set([hook.via]);
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
/** our chat DataChannel (a DataProducer), once made */
let chatProducer = null;
/** dataProducerId -> { dataProducerId, peerId, label, closed, consumer } (others' DataChannels) */
const remoteData = new Map();
/** peerId -> the spatial layer chosen for that peer's video (kept across re-consumes) */
const preferredLayers = new Map();
/** generated audio (mic=silent|tone): its AudioContext */
let audioCtx = null;

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
  // Remote tiles: which simulcast layer of this peer's video we want.
  const layer = isLocal ? null : el('select', { class: 'layer', title: 'video layer to receive', hidden: '' });
  const tile = el('div', { class: `tile no-video${isLocal ? ' local' : ''}` },
    avatar, video, name, badges, stats, ...(layer ? [layer] : []));
  if (isLocal) $('grid').prepend(tile);
  else $('grid').append(tile);
  return { tile, video, name, badges, stats, layer };
}

const LAYER_NAMES = ['low', 'medium', 'high'];

/** Fills a tile's layer select for a video of `count` spatial layers. */
function showLayerSelect(peer, count) {
  const sel = peer.ui.layer;
  if (!sel) return;
  if (count < 2) {
    sel.hidden = true;
    return;
  }
  if (sel.options.length !== count + 1) {
    sel.replaceChildren(el('option', { value: '', text: 'auto (highest)' }));
    for (let i = count - 1; i >= 0; i--) {
      const nm = count === 3 ? LAYER_NAMES[i] : `layer ${i}`;
      sel.append(el('option', { value: String(i), text: `${nm} (${i})` }));
    }
    sel.onchange = () => {
      const v = sel.value === '' ? null : Number(sel.value);
      setPreferredLayer(peer.peerId, v).catch((err) => recordError(`layer of ${peer.displayName}`, err));
    };
  }
  const want = preferredLayers.get(peer.peerId);
  sel.value = want == null ? '' : String(want);
  sel.hidden = false;
}

/** Spatial layers of a consumer's stream (mediasoup puts them in its scalabilityMode). */
function spatialLayersOf(consumer) {
  const mode = consumer.rtpParameters?.encodings?.[0]?.scalabilityMode || '';
  const m = /^[LS](\d+)/.exec(mode);
  return m ? Number(m[1]) : 1;
}

/** The video consumer we hold for a peer, if any. */
function videoConsumerOf(peerId) {
  for (const [consumerId, c] of consumers) {
    if (c.peerId === peerId && c.kind === 'video') return { consumerId, ...c };
  }
  return null;
}

/**
 * The simulcast layer of `peerId`'s video we want: 0 (lowest) .. n-1, or
 * null for the highest. Remembered for that peer (applied again when its
 * video is consumed anew).
 */
async function setPreferredLayer(peerId, spatialLayer) {
  if (spatialLayer == null) preferredLayers.delete(peerId);
  else preferredLayers.set(peerId, spatialLayer);
  const peer = peers.get(peerId);
  const vc = videoConsumerOf(peerId);
  if (peer && vc) showLayerSelect(peer, spatialLayersOf(vc.consumer));
  if (!vc) return false;
  await applyPreferredLayer(vc.consumerId, vc.consumer, spatialLayer);
  return true;
}

async function applyPreferredLayer(consumerId, consumer, spatialLayer) {
  const layers = spatialLayersOf(consumer);
  const s = spatialLayer == null ? layers - 1 : Math.max(0, Math.min(layers - 1, spatialLayer));
  await sig.request('setConsumerPreferredLayers', { consumerId, spatialLayer: s });
  logLine(`preferred layer ${s} for consumer ${consumerId}`);
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
  peer.ui.tile.classList.toggle('speaking', hook.activeSpeaker === peerId);
  peers.set(peerId, peer);
  updateCount();
  return peer;
}

function removePeer(peerId) {
  const peer = peers.get(peerId);
  for (const p of remoteProducers.values()) {
    if (p.peerId === peerId) p.closed = true;
  }
  for (const d of remoteData.values()) {
    if (d.peerId === peerId) closeRemoteData(d.dataProducerId);
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
  consumeProducer(p).catch(async (err) => {
    const end = Date.now() + CONSUME_GRACE_MS;
    while (!(p.closed || leaving || GONE_CODES.has(err?.code)) && Date.now() < end) await sleep(250);
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
  if (consumer.kind === 'video') {
    showLayerSelect(peer, spatialLayersOf(consumer));
    // A layer chosen for this peer before (its video consumed anew).
    if (preferredLayers.has(p.peerId)) {
      await applyPreferredLayer(consumer.id, consumer, preferredLayers.get(p.peerId));
    }
  }
  // Consumers are created paused server-side: resume now that we are ready.
  await sig.request('resumeConsumer', { consumerId: consumer.id });
  logLine(`consuming ${consumer.kind} of ${peer.displayName} (${consumer.id}${consumer.kind === 'video' ? `, ${spatialLayersOf(consumer)} layer(s)` : ''})`);
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
    if (c.kind === 'video' && peer.ui.layer) peer.ui.layer.hidden = true;
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
      case 'newDataProducer':
        noteDataProducer(data);
        break;
      case 'dataProducerClosed':
        closeRemoteData(data.dataProducerId);
        break;
      case 'activeSpeaker':
        onActiveSpeaker(data);
        break;
      case 'reconnect':
        logLine(`server asked us to reconnect: ${data.reason || ''}${data.url ? ` through ${data.url}` : ''}`);
        if (data.url) {
          // The node drains: it keeps us until we go.
          moveTo(data.url, `moving: ${data.reason || 'asked to'}`);
        } else {
          // Our media worker or node was lost: the node removes us and
          // closes the socket; we then rejoin (see onClose).
          reconnectRequested = true;
        }
        break;
      default:
        logLine(`ignoring unknown event ${name}`);
    }
  } catch (err) {
    recordError(`event ${name}`, err);
  }
}

// ---------------------------------------------------------------- active speaker

function onActiveSpeaker({ peerId, producerId }) {
  if (!peerId) return;
  const known = peers.get(peerId);
  hook.activeSpeaker = peerId;
  hook.speakerEvents.push({ at: Date.now(), peerId, producerId, displayName: known?.displayName ?? null });
  if (hook.speakerEvents.length > 200) hook.speakerEvents.shift();
  for (const peer of peers.values()) peer.ui.tile.classList.toggle('speaking', peer.peerId === peerId);
  logLine(`active speaker: ${known?.displayName ?? peerId}`);
}

// ---------------------------------------------------------------- chat (DataChannels)

function chatEnabled() {
  return params.chat && !!device?.sctpCapabilities;
}

/** Another participant's DataChannel: consume it when it is the chat. */
function noteDataProducer(info) {
  const { dataProducerId, peerId, label } = info;
  if (!dataProducerId || remoteData.has(dataProducerId) || peerId === hook.peerId) return;
  if (label !== 'chat' || !params.chat) return;
  const d = { dataProducerId, peerId, label, closed: false, consumer: null };
  remoteData.set(dataProducerId, d);
  addPeer(peerId);
  consumeChat(d).catch(async (err) => {
    // As for media: the channel (or its peer) may be on its way out.
    const end = Date.now() + CONSUME_GRACE_MS;
    while (!(d.closed || leaving || GONE_CODES.has(err?.code)) && Date.now() < end) await sleep(250);
    if (d.closed || leaving || GONE_CODES.has(err?.code)) {
      logLine(`consumeData ${dataProducerId} abandoned: ${err?.message || err}`);
      return;
    }
    recordError(`chat of ${peers.get(peerId)?.displayName ?? peerId}`, err);
  });
}

async function consumeChat(d) {
  const transport = await recvReady.promise;
  if (d.closed || !transport.appData.sctp) return;
  const r = await sig.request('consumeData', { transportId: transport.id, dataProducerId: d.dataProducerId });
  const dc = await transport.consumeData({
    id: r.id,
    dataProducerId: r.dataProducerId,
    sctpStreamParameters: r.sctpStreamParameters,
    label: r.label,
    protocol: r.protocol,
    appData: { peerId: d.peerId },
  });
  if (d.closed || leaving) {
    dc.close();
    return;
  }
  d.consumer = dc;
  dc.on('message', (data) => {
    const text = typeof data === 'string' ? data : new TextDecoder().decode(data);
    addChatLine({ peerId: d.peerId, from: peers.get(d.peerId)?.displayName ?? d.peerId, text, local: false });
  });
  dc.on('transportclose', () => closeRemoteData(d.dataProducerId));
  dc.on('close', () => closeRemoteData(d.dataProducerId));
  logLine(`consuming chat of ${peers.get(d.peerId)?.displayName ?? d.peerId} (${dc.id})`);
}

function closeRemoteData(dataProducerId) {
  const d = remoteData.get(dataProducerId);
  if (!d) return;
  remoteData.delete(dataProducerId);
  d.closed = true;
  try { d.consumer?.close(); } catch { /* already closed */ }
}

function chatChannels() {
  return [...remoteData.values()].map((d) => ({
    dataProducerId: d.dataProducerId,
    peerId: d.peerId,
    displayName: peers.get(d.peerId)?.displayName ?? null,
    readyState: d.consumer?.readyState ?? 'pending',
  }));
}

function addChatLine({ peerId, from, text, local }) {
  const msg = { at: Date.now(), peerId, from, text: String(text).slice(0, 2000), local };
  hook.chat.push(msg);
  if (hook.chat.length > 500) hook.chat.shift();
  const list = $('chat-log');
  if (!list) return;
  const li = el('li', { class: local ? 'local' : '' },
    el('span', { class: 'from', text: local ? `${from} (you)` : from }),
    el('span', { class: 'text', text: msg.text }));
  li.dataset.from = from;
  li.dataset.peerId = peerId ?? '';
  list.append(li);
  list.scrollTop = list.scrollHeight;
}

/** Sends a chat message on our DataChannel; false when it is not open. */
async function sendChat(text) {
  const t = String(text ?? '').trim();
  if (!t || !chatProducer || chatProducer.readyState !== 'open') return false;
  chatProducer.send(t);
  addChatLine({ peerId: hook.peerId, from: params.name, text: t, local: true });
  return true;
}

/** Opens our chat DataChannel on the send transport. */
async function openChat() {
  if (!sendTransport?.appData.sctp) return;
  chatProducer = await sendTransport.produceData({ label: 'chat', ordered: true });
  const opened = () => {
    hook.chatOpen = true;
    $('chat-input').disabled = false;
    $('chat-send').disabled = false;
    logLine(`chat channel open (${chatProducer.id})`);
  };
  if (chatProducer.readyState === 'open') opened();
  else chatProducer.on('open', opened);
  chatProducer.on('close', () => { hook.chatOpen = false; });
  chatProducer.on('error', (err) => logLine(`chat channel error: ${err?.message || err}`));
}

function initChat() {
  if (!params.chat) return;
  $('chat').hidden = false;
  $('chat-form').addEventListener('submit', (ev) => {
    ev.preventDefault();
    const input = $('chat-input');
    sendChat(input.value).then((sent) => { if (sent) input.value = ''; });
  });
}

// ---------------------------------------------------------------- transports

async function createTransport(direction) {
  const req = { direction };
  // DataChannels (the chat) need SCTP on both transports.
  if (chatEnabled()) req.sctpCapabilities = device.sctpCapabilities;
  const info = await sig.request('createWebRtcTransport', req);
  const opts = {
    id: info.id,
    iceParameters: info.iceParameters,
    iceCandidates: info.iceCandidates,
    dtlsParameters: info.dtlsParameters,
    ...(info.sctpParameters ? { sctpParameters: info.sctpParameters } : {}),
    iceServers: [],
    appData: { sctp: !!info.sctpParameters }, // whether it carries DataChannels
  };
  const cand = (info.iceCandidates || [])[0];
  if (cand) hook.servedBy = cand.address || cand.ip || null;
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
    transport.on('producedata', ({ sctpStreamParameters, label, protocol, appData }, callback, errback) => {
      sig.request('produceData', { transportId: transport.id, sctpStreamParameters, label, protocol, appData })
        .then(({ id }) => callback({ id }), (err) => { recordError(`produceData ${label}`, err); errback(err); });
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
  const fromDevice = params.audio && params.mic === 'device';
  localStream = (fromDevice || video)
    ? await navigator.mediaDevices.getUserMedia({ audio: fromDevice, video })
    : new MediaStream();
  if (params.audio && !fromDevice) localStream.addTrack(generatedAudio(params.mic));
  const me = makeTile(`${params.name} (you)`, true);
  me.tile.classList.toggle('no-video', !params.video);
  me.video.srcObject = localStream;
  playVideo(me.video);
  for (const track of localStream.getTracks()) {
    if (!device.canProduce(track.kind)) {
      recordError(`produce ${track.kind}`, { code: 'cannot_produce', message: `device cannot produce ${track.kind}` });
      continue;
    }
    const options = { track, appData: { source: track.kind === 'video' ? 'camera' : 'mic' } };
    if (track.kind === 'video') Object.assign(options, videoSendOptions());
    const producer = await sendTransport.produce(options);
    localProducers.set(track.kind, producer);
    logLine(`producing ${track.kind} (${producer.id})`);
  }
  me.badges.textContent = [...localProducers.keys()].map((k) => (k === 'audio' ? 'mic' : 'cam')).join(' · ');
}

/**
 * How the camera is sent: VP8, with 3 simulcast layers at 1/4, 1/2 and
 * full resolution (unless `simulcast=0`), each with 3 temporal layers.
 */
function videoSendOptions() {
  const codec = device.rtpCapabilities.codecs.find((c) => c.mimeType.toLowerCase() === 'video/vp8');
  const out = codec ? { codec } : {};
  if (!params.simulcast) return out;
  out.encodings = [
    { rid: 'r0', scaleResolutionDownBy: 4, maxBitrate: 150_000, scalabilityMode: 'L1T3' },
    { rid: 'r1', scaleResolutionDownBy: 2, maxBitrate: 400_000, scalabilityMode: 'L1T3' },
    { rid: 'r2', scaleResolutionDownBy: 1, maxBitrate: 1_200_000, scalabilityMode: 'L1T3' },
  ];
  out.codecOptions = { videoGoogleStartBitrate: 1000 };
  return out;
}

/**
 * A generated audio track instead of the microphone: `silent` (digital
 * silence) or `tone` (a test signal: 440 Hz bursts, 0.6 s on and 0.4 s
 * off, over a faint noise floor, so that it reads as someone speaking).
 */
function generatedAudio(kind) {
  audioCtx = new AudioContext();
  const dest = audioCtx.createMediaStreamDestination();
  // A source always feeds the destination, else its track carries no audio
  // (and no RTP) at all: silence is a constant 0.
  const zero = audioCtx.createConstantSource();
  zero.offset.value = 0;
  zero.connect(dest);
  zero.start();
  if (kind === 'tone') {
    const noise = audioCtx.createBuffer(1, audioCtx.sampleRate * 2, audioCtx.sampleRate);
    const d = noise.getChannelData(0);
    for (let i = 0; i < d.length; i++) d[i] = (Math.random() * 2 - 1) * 0.003;
    const src = audioCtx.createBufferSource();
    src.buffer = noise;
    src.loop = true;
    src.connect(dest);
    src.start();
    const osc = audioCtx.createOscillator();
    osc.frequency.value = 440;
    const gain = audioCtx.createGain();
    gain.gain.value = 0;
    const t0 = audioCtx.currentTime + 0.05;
    for (let i = 0; i < 3600; i++) { // an hour of bursts
      gain.gain.setValueAtTime(0.5, t0 + i);
      gain.gain.setValueAtTime(0, t0 + i + 0.6);
    }
    osc.connect(gain).connect(dest);
    osc.start();
  }
  audioCtx.resume().catch(() => {});
  return dest.stream.getAudioTracks()[0];
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
      ...(c.kind === 'video' ? {
        spatialLayers: spatialLayersOf(c.consumer),
        preferredSpatialLayer: preferredLayers.get(c.peerId) ?? null,
      } : {}),
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
  for (const id of [...remoteData.keys()]) closeRemoteData(id);
  for (const p of localProducers.values()) { try { p.close(); } catch { /* ignore */ } }
  localProducers.clear();
  try { chatProducer?.close(); } catch { /* ignore */ }
  chatProducer = null;
  hook.chatOpen = false;
  audioCtx?.close().catch(() => {});
  audioCtx = null;
  try { sendTransport?.close(); } catch { /* ignore */ }
  try { recvTransport?.close(); } catch { /* ignore */ }
  localStream?.getTracks().forEach((t) => t.stop());
  sig?.close();
}

let reconnectRequested = false;

// ---------------------------------------------------------------- other nodes

/** The demo page's address on the node whose signalling URL is `wsUrl`. */
function pageOf(wsUrl) {
  const target = new URL(wsUrl, location.href);
  const page = new URL('/', location.href);
  page.protocol = target.protocol === 'wss:' ? 'https:' : 'http:';
  page.host = target.host;
  return page;
}

/** Reads /api/nodes into the hook; keeps the last list when it fails. */
async function refreshNodes() {
  const r = await fetch('/api/nodes', { cache: 'no-store', signal: AbortSignal.timeout(2000) });
  if (!r.ok) throw new Error(`/api/nodes: HTTP ${r.status}`);
  const body = await r.json();
  if (Array.isArray(body.nodes)) hook.nodes = body.nodes.filter((u) => typeof u === 'string');
  if (typeof body.url === 'string') ownUrls.add(body.url);
  if (typeof body.node === 'string') hook.node = body.node;
}

/** Whether the node of `wsUrl` answers HTTP (its page would load). */
async function answers(wsUrl) {
  try {
    // An opaque answer is enough: only whether the node answers matters.
    await fetch(new URL('/healthz', pageOf(wsUrl)), {
      mode: 'no-cors', cache: 'no-store', signal: AbortSignal.timeout(2000),
    });
    return true;
  } catch {
    return false;
  }
}

/**
 * Leaves this node and loads the page on the node of `wsUrl`, with the
 * same query and `rejoin` plus one. `refused`: this node refused the join
 * (draining); repeated refusals wait longer each time.
 */
function moveTo(wsUrl, why, { refused = false } = {}) {
  if (navigating) return;
  navigating = true;
  moving = true;
  leaving = true;
  const page = pageOf(wsUrl);
  const q = new URLSearchParams(location.search);
  q.set('rejoin', String(params.rejoin + 1));
  if (refused) q.set('bounce', String(params.bounce + 1));
  else q.delete('bounce');
  page.search = q.toString();
  const wait = refused && params.bounce > 0 ? Math.min(10_000, 500 * 2 ** (params.bounce - 1)) : 0;
  logLine(`moving to ${page} (${why})${wait ? ` in ${wait} ms` : ''}`);
  setState('moving', why);
  teardown();
  setTimeout(() => location.assign(page.toString()), wait);
}

/**
 * Rejoins through a node that answers: the other nodes first (its own
 * last), or its own first with `ownFirst`; every known node in turn, then
 * again after a growing pause, until one answers.
 */
async function rejoinElsewhere(why, { ownFirst = false, refused = false } = {}) {
  if (moving) return;
  moving = true;
  leaving = true;
  logLine(`rejoining: ${why}`);
  setState('reconnecting', why);
  teardown();
  // A fresher list if this node still answers (a draining one lists the others).
  await refreshNodes().catch((err) => logLine(`node list not refreshed: ${err.message}`));
  for (let round = 1; ; round++) {
    const others = hook.nodes.filter((u) => !ownUrls.has(u));
    const order = ownFirst ? [hook.via, ...others] : [...others, hook.via];
    for (const url of order) {
      if (await answers(url)) {
        moveTo(url, `rejoining: ${why}`, { refused });
        return;
      }
      logLine(`rejoining: ${url} does not answer`);
    }
    const wait = Math.min(10_000, 500 * 2 ** Math.min(round - 1, 5));
    setState('reconnecting', `${why}: no node answers; again in ${(wait / 1000).toFixed(1)} s (round ${round})`);
    await sleep(wait);
  }
}

/**
 * The access token of a join through `wsUrl`: the page URL's `token=`, else
 * a fresh one from that node's GET /api/dev-token (each page load, so each
 * rejoin through another node, asks the node it joins through). Throws an
 * AccessTokenError (code `token_required`) when the node serves none.
 */
async function accessToken(wsUrl) {
  if (params.token) {
    hook.tokenFrom = 'url';
    return params.token;
  }
  const token = await fetchDevToken(wsUrl, params.room, params.name, ['publish', 'subscribe', 'rename']);
  hook.tokenFrom = 'dev';
  logLine(`access token from ${new URL(wsUrl).host}/api/dev-token`);
  return token;
}

async function main() {
  setState('connecting');
  const token = await accessToken(hook.via);
  sig = new Signalling(hook.via, {
    onEvent,
    onProtocolError: (msg) => recordError('signalling', { code: 'protocol', message: msg }),
    onClose: (ev) => {
      if (moving || leaving || hook.state === 'failed') return;
      if (reconnectRequested) {
        rejoinElsewhere('media lost', { ownFirst: true });
        return;
      }
      // The node went away without a word (died, or stopped abruptly).
      logLine(`socket closed by the server (code ${ev.code} ${ev.reason || ''})`);
      rejoinElsewhere(`connection lost (code ${ev.code})`);
    },
  });
  await sig.open();

  setState('joining');
  let j;
  try {
    j = await sig.request('join', { room: params.room, displayName: params.name, protocolVersion: 1, token });
  } catch (err) {
    if (err?.code === 'unauthorized') {
      const from = hook.tokenFrom === 'url' ? 'the token= of the URL' : 'the dev token of this node';
      throw new AccessTokenError('unauthorized', `unauthorized: the access token (${from}) was refused: ${err.reason}`);
    }
    if (err?.code !== 'draining') throw err;
    logLine(`join refused: ${err.message}`);
    if (err.url) moveTo(err.url, 'this node is draining', { refused: true });
    else rejoinElsewhere('this node is draining', { refused: true });
    return;
  }
  hook.peerId = j.peerId;
  hook.roomId = j.roomId;
  logLine(`joined room ${j.roomId} as ${j.peerId}`);
  for (const p of j.peers || []) if (p.peerId !== j.peerId) addPeer(p.peerId, p.displayName);
  for (const p of j.producers || []) noteProducer(p);
  for (const d of j.dataProducers || []) noteDataProducer(d);

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
    if (chatEnabled()) {
      try {
        await openChat();
      } catch (err) {
        recordError('chat', err);
      }
    }
  }

  hook.isReady = true;
  setState('ready', `${params.room} as ${params.name}${params.rejoin ? ` (rejoined ${params.rejoin}x)` : ''}`);
  readyD.resolve(true);
  // Where to rejoin, should this node go away.
  const refresh = () => refreshNodes().catch((err) => logLine(`node list: ${err.message}`));
  await refresh();
  setInterval(refresh, 30_000);
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
  initChat();
  updateCount();
  if (params.stats) setInterval(() => { updateOverlays().catch(() => {}); }, 2000);
  main().catch((err) => {
    if (moving) {
      logLine(`join abandoned: ${err?.message || err}`);
      return;
    }
    recordError('join', err);
    setState('failed', err.message);
    readyD.reject(err);
  });
}

if (document.readyState === 'loading') document.addEventListener('DOMContentLoaded', init);
else init();
