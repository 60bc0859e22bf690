// Mafalda cluster dashboard, served at /dashboard by every node.
//
// Where the data comes from: the page aggregates, the node does not. It
// reads /api/nodes of the node that served it (the signalling URLs of the
// nodes taking participants, every 5 s), derives each node's HTTP origin
// from its URL (ws://host:port/ws -> http://host:port), and subscribes to
// every node's /api/status/stream (Server-Sent Events: the JSON of
// /api/status, once a second; any origin may read it). It always includes
// its own origin. A node it learnt of stays subscribed while it answers,
// even when /api/nodes leaves it out (draining); a node that stops
// answering is shown stale, then unreachable, with what the others gossip
// of it (`cluster.members`). Members no stream reaches (no HTTP URL known)
// are shown from gossip only.
//
// Drawn: nodes in columns sorted by name, each node's workers (by slot)
// and in each worker the routers of the rooms placed on it (`roomDetails`
// `routers`), and every pipe link of `linksIn` / `linksOut` as an arrow
// from router to router, its width and label the producers it carries.
//
// Test hook: every drawn thing carries data attributes:
//   svg  g.node[data-node][data-live]  g.worker[data-worker][data-alive]
//        g.router[data-router][data-room][data-role]
//        g.room-part[data-room][data-node][data-role]  (a part in a room without a router here)
//        g.link[data-room][data-from][data-to][data-from-node][data-to-node][data-hops][data-cross]
//   tr[data-member][data-state][data-live][data-events]  (nodes table)
//   tr[data-worker-row]                                   (workers table)
//   tr[data-room][data-participants][data-nodes][data-homes]  (rooms table)
//   body[data-events]: status events received so far, all nodes
// and window.dashboard = { sources(), model(), renders }.

const NODES_EVERY_MS = 5000;
const STALE_MS = 3500; // a node whose last event is older is shown stale
const RETRY_MS = 3000; // reopening a stream the browser gave up on

const sources = new Map(); // HTTP origin -> Source
let totalEvents = 0;
let renders = 0;
let renderQueued = false;

// ---------------------------------------------------------------- helpers

const esc = (v) => String(v ?? '').replace(/[&<>"']/g, (c) => ({
  '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;',
}[c]));

/** `node/wN` -> { node, slot }. */
function parseRouter(r) {
  const i = r.lastIndexOf('/');
  const slot = Number(r.slice(i + 2));
  return { node: r.slice(0, i), slot: Number.isFinite(slot) ? slot : 0 };
}

/** A stable colour per room name. */
function roomColour(room) {
  let h = 0;
  for (const c of room) h = (h * 31 + c.charCodeAt(0)) >>> 0;
  return `hsl(${h % 360} 60% 62%)`;
}

function httpOrigin(wsUrl) {
  try {
    const u = new URL(wsUrl);
    return `${u.protocol === 'wss:' ? 'https:' : 'http:'}//${u.host}`;
  } catch {
    return null;
  }
}

const sum = (list, f) => list.reduce((n, x) => n + (Number(f(x)) || 0), 0);
const count = (n, word) => `${n} ${word}${n === 1 ? '' : 's'}`;

// ---------------------------------------------------------------- streams

class Source {
  constructor(origin) {
    this.origin = origin;
    this.es = null;
    this.status = null;
    this.lastAt = 0;
    this.events = 0;
    this.error = null;
    this.open();
  }

  open() {
    // An operator's token from the dashboard's own URL (`?token=`) opens
    // every node's detail; without it, each node shows its detail to
    // clients of its `http.admin_networks` only.
    const token = new URLSearchParams(location.search).get('token');
    const q = token ? `?token=${encodeURIComponent(token)}` : '';
    this.es = new EventSource(`${this.origin}/api/status/stream${q}`);
    this.es.onmessage = (e) => {
      try {
        this.status = JSON.parse(e.data);
      } catch (err) {
        this.error = `bad event: ${err.message}`;
        return;
      }
      this.lastAt = Date.now();
      this.events++;
      totalEvents++;
      this.error = null;
      scheduleRender();
    };
    this.es.onerror = () => {
      // Closed: refused (503) or not an event stream; the browser will not
      // retry by itself. Otherwise it is reconnecting already.
      if (this.es.readyState === EventSource.CLOSED) {
        this.error = 'stream refused';
        setTimeout(() => this.open(), RETRY_MS);
      } else {
        this.error = 'reconnecting';
      }
      scheduleRender();
    };
  }

  get live() {
    return this.status !== null && Date.now() - this.lastAt < STALE_MS;
  }
}

function subscribe(origin) {
  if (origin && !sources.has(origin)) sources.set(origin, new Source(origin));
}

async function refreshNodes() {
  subscribe(location.origin);
  try {
    const r = await fetch('/api/nodes', { cache: 'no-store' });
    const body = await r.json();
    for (const url of [body.url, ...(body.nodes || [])]) {
      if (url) subscribe(httpOrigin(url));
    }
  } catch {
    // The serving node does not answer: keep what we have.
  }
  scheduleRender();
}

// ---------------------------------------------------------------- model

/**
 * Everything drawn, from the latest status of every node:
 * { nodes: [{ name, origin, status, live, events, error, seen: [{ by, state, draining, load }],
 *             workers: [{ slot, detail, routers: [{ id, room, role, peers }] }] }],
 *   rooms: [{ room, parts: [{ node, ...roomDetail }], participants, homes }],
 *   links: [{ room, from, to, hops }] }
 */
function buildModel() {
  const now = Date.now();
  const nodes = new Map();
  const node = (name) => {
    if (!nodes.has(name)) {
      nodes.set(name, { name, origin: null, status: null, live: false, lastAt: 0, events: 0, error: null, seen: [], workers: new Map() });
    }
    return nodes.get(name);
  };
  // The freshest status per node name (two origins may reach one node).
  for (const src of sources.values()) {
    if (!src.status) continue;
    const n = node(src.status.node);
    if (src.lastAt > n.lastAt) {
      Object.assign(n, { origin: src.origin, status: src.status, lastAt: src.lastAt, events: src.events, error: src.error });
      n.live = now - src.lastAt < STALE_MS;
    }
  }
  // What the live nodes' membership says of the others.
  for (const n of [...nodes.values()]) {
    if (!n.live) continue;
    for (const m of n.status.cluster?.members || []) {
      node(m.node).seen.push({ by: n.name, state: m.state, draining: m.draining, load: m.load });
    }
  }
  // Workers and routers.
  const worker = (n, slot) => {
    if (!n.workers.has(slot)) n.workers.set(slot, { slot, detail: null, routers: new Map() });
    return n.workers.get(slot);
  };
  const rooms = new Map();
  const links = new Map();
  for (const n of nodes.values()) {
    if (!n.status) continue;
    for (const w of n.status.workerDetails || []) worker(n, w.slot).detail = w;
    for (const r of n.status.roomDetails || []) {
      if (!rooms.has(r.room)) rooms.set(r.room, { room: r.room, parts: [] });
      rooms.get(r.room).parts.push({ node: n.name, ...r });
      for (const rt of r.routers || []) {
        const at = parseRouter(rt.router);
        worker(node(at.node), at.slot).routers.set(r.room, { id: rt.router, room: r.room, role: r.role, peers: rt.peers });
      }
      for (const l of [...(r.linksIn || []), ...(r.linksOut || [])]) {
        const key = `${r.room}\n${l.from}\n${l.to}`;
        const prev = links.get(key);
        links.set(key, { room: r.room, from: l.from, to: l.to, hops: Math.max(prev?.hops ?? 0, l.hops) });
      }
    }
  }
  // Every link's ends are drawn, even on a node whose status is unknown.
  for (const l of links.values()) {
    for (const end of [l.from, l.to]) {
      const at = parseRouter(end);
      const w = worker(node(at.node), at.slot);
      if (!w.routers.has(l.room)) {
        const part = rooms.get(l.room)?.parts.find((p) => p.node === at.node);
        w.routers.set(l.room, { id: end, room: l.room, role: part?.role ?? '?', peers: null });
      }
    }
  }
  for (const r of rooms.values()) {
    const local = sum(r.parts, (p) => p.peers);
    const known = Math.max(0, ...r.parts.map((p) => p.peers + p.remotePeers));
    r.participants = Math.max(local, known);
    r.homes = [...new Set(r.parts.filter((p) => p.role === 'home').map((p) => p.node))].sort();
    r.parts.sort((a, b) => a.node.localeCompare(b.node));
  }
  const sorted = [...nodes.values()].sort((a, b) => a.name.localeCompare(b.name));
  for (const n of sorted) {
    n.workers = [...n.workers.values()].sort((a, b) => a.slot - b.slot);
    for (const w of n.workers) w.routers = [...w.routers.values()].sort((a, b) => a.room.localeCompare(b.room));
    // The rooms this node has a part in but no router of (a home that
    // keeps the room's map while every participant is elsewhere).
    const routed = new Set(n.workers.flatMap((w) => w.routers.map((r) => r.room)));
    n.unrouted = (n.status?.roomDetails || []).filter((r) => !routed.has(r.room))
      .map((r) => ({ room: r.room, role: r.role })).sort((a, b) => a.room.localeCompare(b.room));
  }
  return {
    nodes: sorted,
    rooms: [...rooms.values()].sort((a, b) => a.room.localeCompare(b.room)),
    links: [...links.values()].sort((a, b) => `${a.room}${a.from}${a.to}`.localeCompare(`${b.room}${b.from}${b.to}`)),
  };
}

/** How the other nodes see `n`: the worst state any of them reports. */
function seenState(n) {
  const order = ['alive', 'suspect', 'down'];
  let worst = null;
  for (const s of n.seen) if (worst === null || order.indexOf(s.state) > order.indexOf(worst)) worst = s.state;
  return worst;
}

function httpState(n) {
  if (n.live) return 'live';
  if (n.status) return n.error ? 'unreachable' : 'stale';
  return n.origin ? 'unreachable' : 'no stream';
}

// ---------------------------------------------------------------- graph

const G = {
  pad: 16, colW: 230, gap: 130, nodeH: 58, workerHead: 34, routerH: 28, routerGap: 6, workerGap: 10,
};

function drawGraph(model) {
  if (!model.nodes.length) return '<svg width="400" height="60"><text class="empty" x="16" y="36">waiting for the first status…</text></svg>';
  const boxes = new Map(); // `${room}\n${router}` -> { x, y, w, h, col }
  let height = 0;
  const cols = model.nodes.map((n, col) => {
    const x = G.pad + col * (G.colW + G.gap);
    let y = G.pad + G.nodeH;
    const parts = [];
    for (const w of n.workers) {
      const wy = y;
      const h = G.workerHead + w.routers.length * (G.routerH + G.routerGap) + (w.routers.length ? 4 : 0);
      const routers = w.routers.map((r, i) => {
        const rx = x + 12;
        const ry = wy + G.workerHead + i * (G.routerH + G.routerGap);
        const rw = G.colW - 24;
        boxes.set(`${r.room}\n${r.id}`, { x: rx, y: ry, w: rw, h: G.routerH, col });
        const tag = r.role === 'home' ? 'H' : r.role === 'shard' ? 'S' : '';
        const peers = r.peers === null ? '' : ` · ${count(r.peers, 'peer')}`;
        return `<g class="router" data-router="${esc(r.id)}" data-room="${esc(r.room)}" data-role="${esc(r.role)}">
          <title>${esc(`room ${r.room} on ${r.id} (${r.role})`)}</title>
          <rect class="router-box" x="${rx}" y="${ry}" width="${rw}" height="${G.routerH}" rx="4" fill="${roomColour(r.room)}"/>
          <text x="${rx + 8}" y="${ry + 18}">${esc(`${tag ? `${tag} ` : ''}${r.room}${peers}`)}</text></g>`;
      });
      const d = w.detail;
      const label = d
        ? `w${w.slot} · cpu ${Number(d.cpuPercent).toFixed(0)}% · ${count(d.peers, 'peer')} · ${count(d.routers, 'router')}`
        : `w${w.slot}`;
      const alive = d ? (d.alive ? 1 : 0) : 1;
      parts.push(`<g class="worker" data-worker="${esc(`${n.name}/w${w.slot}`)}" data-alive="${alive}">
        <rect class="worker-box" x="${x + 6}" y="${wy}" width="${G.colW - 12}" height="${h}" rx="5"/>
        <text class="sub" x="${x + 14}" y="${wy + 21}">${esc(label)}</text>${routers.join('')}</g>`);
      y += h + G.workerGap;
    }
    for (const r of n.unrouted) {
      const tag = r.role === 'home' ? 'H' : r.role === 'shard' ? 'S' : '';
      parts.push(`<g class="room-part" data-room="${esc(r.room)}" data-node="${esc(n.name)}" data-role="${esc(r.role)}">
        <title>${esc(`${n.name}'s part in room ${r.room} (${r.role}): no router here`)}</title>
        <rect x="${x + 12}" y="${y}" width="${G.colW - 24}" height="${G.routerH}" rx="4" stroke="${roomColour(r.room)}"/>
        <text x="${x + 20}" y="${y + 18}">${esc(`${tag ? `${tag} ` : ''}${r.room} · no router here`)}</text></g>`);
      y += G.routerH + G.routerGap;
    }
    const bottom = Math.max(y, G.pad + G.nodeH + 10);
    height = Math.max(height, bottom);
    const s = n.status;
    const seen = seenState(n);
    const line1 = s ? `${count(s.workers, 'worker')} · ${count(s.peers, 'peer')} · ${count(s.rooms, 'room')}` : 'no status';
    const line2 = [httpState(n), seen ? `seen ${seen}` : null, s?.drain && s.drain !== 'serving' ? s.drain : null].filter(Boolean).join(' · ');
    return `<g class="node" data-node="${esc(n.name)}" data-live="${n.live ? 1 : 0}">
      <rect class="node-frame" x="${x}" y="${G.pad}" width="${G.colW}" height="__H${col}__" rx="8"/>
      <text class="node-title" x="${x + 10}" y="${G.pad + 20}">${esc(n.name)}</text>
      <text class="sub" x="${x + 10}" y="${G.pad + 36}">${esc(line1)}</text>
      <text class="sub" x="${x + 10}" y="${G.pad + 50}">${esc(line2)}</text>
      ${parts.join('')}</g>`;
  });
  const frameH = height - G.pad + 2;
  const svgNodes = cols.map((c, i) => c.replace(`__H${i}__`, String(frameH))).join('');
  const edges = model.links.map((l) => {
    const a = boxes.get(`${l.room}\n${l.from}`);
    const b = boxes.get(`${l.room}\n${l.to}`);
    if (!a || !b) return '';
    const fromNode = parseRouter(l.from).node;
    const toNode = parseRouter(l.to).node;
    const cross = fromNode !== toNode;
    let d;
    let lx;
    let ly;
    let anchor = 'middle';
    const ay = a.y + a.h / 2;
    const by = b.y + b.h / 2;
    if (a.col === b.col) {
      // Between two workers of one node: a loop on the column's right.
      const x0 = a.x + a.w;
      const bend = x0 + 36;
      d = `M${x0},${ay} C${bend},${ay} ${bend},${by} ${b.x + b.w},${by}`;
      lx = x0 + 32;
      ly = (ay + by) / 2 + 4;
      anchor = 'start';
    } else {
      const rightward = a.col < b.col;
      const x0 = rightward ? a.x + a.w : a.x;
      const x1 = rightward ? b.x : b.x + b.w;
      const dx = (x1 - x0) / 2;
      d = `M${x0},${ay} C${x0 + dx},${ay} ${x1 - dx},${by} ${x1},${by}`;
      lx = (x0 + x1) / 2;
      ly = (ay + by) / 2 - 6;
    }
    const width = 1.5 + Math.min(l.hops, 10) * 0.8;
    const colour = roomColour(l.room);
    return `<g class="link" data-room="${esc(l.room)}" data-from="${esc(l.from)}" data-to="${esc(l.to)}"
        data-from-node="${esc(fromNode)}" data-to-node="${esc(toNode)}" data-hops="${l.hops}" data-cross="${cross ? 1 : 0}">
      <title>${esc(`${l.room}: ${l.from} → ${l.to}, ${l.hops} producer${l.hops === 1 ? '' : 's'}`)}</title>
      <path d="${d}" stroke="${colour}" stroke-width="${width}" marker-end="url(#arrow)" style="color:${colour}"/>
      <text x="${lx}" y="${ly}" text-anchor="${anchor}" fill="${colour}">${l.hops}</text></g>`;
  });
  // Room on the right for the last column's links between its workers.
  const width = G.pad * 2 + model.nodes.length * G.colW + (model.nodes.length - 1) * G.gap + 60;
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height + G.pad}" viewBox="0 0 ${width} ${height + G.pad}">
    <defs><marker id="arrow" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="5" markerHeight="5" orient="auto-start-reverse">
      <path d="M0,0 L10,5 L0,10 z" fill="context-stroke"/></marker></defs>
    ${svgNodes}${edges.join('')}</svg>`;
}

// ---------------------------------------------------------------- tables

function drawNodes(model) {
  const head = `<tr><th>node</th><th class="left">HTTP</th><th class="left">stream</th><th class="left">seen by others</th>
    <th class="left">drain</th><th>workers</th><th>cpu %</th><th>rooms</th><th>peers</th><th>transports</th><th>producers</th>
    <th>consumers</th><th>pipe T/P/C</th><th>gossiped load</th></tr>`;
  const rows = model.nodes.map((n) => {
    const s = n.status;
    const w = s?.workerDetails || [];
    const seen = n.seen.map((x) => `${x.by}: ${x.state}${x.draining ? ' (draining)' : ''}`).join(', ');
    const load = n.seen.find((x) => x.load)?.load;
    const loadText = load
      ? `cpu ${Number(load.cpu_percent).toFixed(0)}%, ${count(load.peers, 'peer')}, score ${Number(load.score).toFixed(2)}${load.full ? ', full' : ''}`
      : '';
    const hs = httpState(n);
    const state = seenState(n) ?? (n.live ? 'alive' : 'unknown');
    const cell = (v) => `<td>${s ? esc(v) : ''}</td>`;
    return `<tr data-member="${esc(n.name)}" data-state="${esc(state)}" data-live="${n.live ? 1 : 0}" data-events="${n.events}">
      <td>${esc(n.name)}</td><td class="left">${esc(n.origin ?? '')}</td>
      <td class="left"><span class="state ${esc(hs.replace(' ', '-'))}">${esc(hs)}</span> ${n.events ? esc(`${n.events} events`) : ''}</td>
      <td class="left wrap">${esc(seen || (model.nodes.length > 1 ? '' : 'alone'))}</td>
      <td class="left">${s ? `<span class="state ${esc(s.drain)}">${esc(s.drain)}</span>` : ''}</td>
      ${cell(s?.workers)}${cell(sum(w, (x) => x.cpuPercent).toFixed(1))}${cell(s?.rooms)}${cell(s?.peers)}${cell(s?.transports)}
      ${cell(s?.producers)}${cell(s?.consumers)}
      ${cell(`${sum(w, (x) => x.pipeTransports)}/${sum(w, (x) => x.pipeProducers)}/${sum(w, (x) => x.pipeConsumers)}`)}
      <td class="left wrap">${esc(loadText)}</td></tr>`;
  });
  return head + rows.join('');
}

function drawWorkers(model) {
  const head = `<tr><th>worker</th><th class="left">alive</th><th>restarts</th><th>cpu %</th><th>thread</th><th>peers</th>
    <th>routers</th><th>transports</th><th>producers</th><th>consumers</th><th>pipe T/P/C</th><th class="left">rooms here</th></tr>`;
  const rows = [];
  for (const n of model.nodes) {
    for (const w of n.workers) {
      const d = w.detail;
      if (!d) continue;
      rows.push(`<tr data-worker-row="${esc(`${n.name}/w${w.slot}`)}"><td>${esc(`${n.name}/w${w.slot}`)}</td>
        <td class="left"><span class="state ${d.alive ? 'alive' : 'down'}">${d.alive ? 'yes' : 'no'}</span></td>
        <td>${d.restarts}</td><td>${Number(d.cpuPercent).toFixed(1)}</td><td>${esc(d.threadId ?? '')}</td><td>${d.peers}</td>
        <td>${d.routers}</td><td>${d.transports}</td><td>${d.producers}</td><td>${d.consumers}</td>
        <td>${d.pipeTransports}/${d.pipeProducers}/${d.pipeConsumers}</td>
        <td class="left">${esc(w.routers.map((r) => r.room).join(', '))}</td></tr>`);
    }
  }
  return head + rows.join('');
}

function drawRooms(model) {
  const head = `<tr><th>room</th><th>participants</th><th class="left">home</th><th class="left">per node (role: peers, producers)</th>
    <th>links</th><th>cross-node links</th></tr>`;
  const rows = model.rooms.map((r) => {
    const links = model.links.filter((l) => l.room === r.room);
    const cross = links.filter((l) => parseRouter(l.from).node !== parseRouter(l.to).node);
    const split = r.homes.length > 1;
    const per = r.parts.map((p) => `${p.node} (${p.role}: ${p.peers}, ${p.producers})`).join(', ');
    const home = r.homes.length ? r.homes.join(', ') : (r.parts.find((p) => p.home)?.home ?? '');
    return `<tr data-room="${esc(r.room)}" data-participants="${r.participants}" data-nodes="${esc(r.parts.map((p) => p.node).join(','))}"
        data-homes="${esc(r.homes.join(','))}">
      <td><span class="swatch" style="background:${roomColour(r.room)}"></span>${esc(r.room)}</td>
      <td>${r.participants}</td>
      <td class="left${split ? ' warn' : ''}">${esc(home)}${split ? ' (split: several homes)' : ''}</td>
      <td class="left wrap">${esc(per)}</td><td>${links.length}</td>
      <td>${cross.map((l) => esc(`${parseRouter(l.from).node}→${parseRouter(l.to).node} (${l.hops})`)).join(', ')}</td></tr>`;
  });
  return head + (rows.join('') || '<tr><td class="left" colspan="6">no open room</td></tr>');
}

// ---------------------------------------------------------------- render

let lastModel = null;

function render() {
  renderQueued = false;
  const model = buildModel();
  lastModel = model;
  document.getElementById('graph').innerHTML = drawGraph(model);
  document.getElementById('nodes').innerHTML = drawNodes(model);
  document.getElementById('workers').innerHTML = drawWorkers(model);
  document.getElementById('rooms').innerHTML = drawRooms(model);
  const live = model.nodes.filter((n) => n.live).length;
  document.getElementById('summary').textContent = `${count(model.nodes.length, 'node')} (${live} live) · `
    + `${count(model.rooms.length, 'room')} · ${count(sum(model.rooms, (r) => r.participants), 'participant')}`;
  document.getElementById('updated').textContent = `served by ${location.host} · updated ${new Date().toLocaleTimeString()}`;
  document.body.dataset.events = String(totalEvents);
  renders++;
}

function scheduleRender() {
  if (renderQueued) return;
  renderQueued = true;
  setTimeout(render, 100); // one render for the events of every node in a burst
}

window.dashboard = {
  sources: () => [...sources.values()].map((s) => ({ origin: s.origin, live: s.live, events: s.events, error: s.error, node: s.status?.node })),
  model: () => lastModel,
  get renders() { return renders; },
};

refreshNodes();
setInterval(refreshNodes, NODES_EVERY_MS);
// Stale and unreachable states show even when no event arrives.
setInterval(scheduleRender, 1000);
