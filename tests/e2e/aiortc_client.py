#!/usr/bin/env python3
"""A real WebRTC participant for Mafalda, built on aiortc + pymediasoup.

It speaks the JSON WebSocket signalling protocol of docs/protocol.md (section 1)
with aiohttp: joins a room, publishes a generated moving-pattern video track
(and a quiet tone as audio), consumes the other participants' producers and
checks that media is really decoded (frames returned by the track's recv()).

Exit status 0 when, within --timeout seconds, every expected peer's video
delivered at least --min-frames decoded frames (and, unless --no-audio-check,
audio frames too); 1 otherwise, with a diagnostic.

After the checks pass it prints a line starting with "AIORTC PASS" and keeps
publishing until stdin reaches EOF or a line is read ("--hold-stdin", used by
tests/e2e/aiortc_pair.mjs), or for --hold seconds; then it sends `leave`.

Several nodes: `--url` may be repeated or comma-separated. It joins through
the first; when its session ends (the socket closes without `leave`, or a
`reconnect` event) it joins again, through the event's `url` when it has one
(joining there first and leaving the old socket then), else through the next
URL of the list, each in turn (a `join` refused with `draining` and a `url`
goes there), round after round with backoff for up to --timeout seconds;
it prints "AIORTC REJOINED n=N via=URL ...", then checks the media again from
the start (printing "AIORTC PASS ... rejoins=N" again) and keeps holding.

Access tokens: every `join` carries one. With --token it is that one (each
join); otherwise each join, rejoins included, first asks the node it joins
through for a fresh one: GET /api/dev-token?room=..&identity=<--name>
&grant=publish&grant=subscribe (subscribe only with --no-send) from the
http(s) origin of that node's signalling URL, which a node in
`[auth] mode = "dev"` serves (scripts/e2e.sh and the cluster scripts run
their nodes so). A node that answers 404 there needs --token.

Run inside a loopback-only network namespace (see scripts/e2e.sh).
"""

from __future__ import annotations

import argparse
import asyncio
import fractions
import json
import logging
import math
import sys
import threading
import time
import urllib.parse
from dataclasses import dataclass, field

import numpy as np

# --- Network pitfalls (see shared notes) -------------------------------------
# aioice never offers 127.0.0.1 as a host candidate, and aiortc falls back to a
# public STUN server when no iceServers are given. Patch both before use.
import aioice.ice
from aiortc.rtcicetransport import RTCIceGatherer

HOST_IP = "127.0.0.1"


def _host_addresses(use_ipv4: bool, use_ipv6: bool) -> list[str]:
    return [HOST_IP] if use_ipv4 else []


aioice.ice.get_host_addresses = _host_addresses
RTCIceGatherer.getDefaultIceServers = classmethod(lambda cls: [])  # type: ignore[assignment]

import aiohttp  # noqa: E402
from aiortc import MediaStreamTrack  # noqa: E402
from aiortc.mediastreams import MediaStreamError  # noqa: E402
from av import AudioFrame, VideoFrame  # noqa: E402
from pymediasoup import AiortcHandler, Device  # noqa: E402
from pymediasoup.models.transport import DtlsParameters, IceCandidate, IceParameters  # noqa: E402,F401
from pymediasoup.rtp_parameters import RtpCapabilities, RtpParameters  # noqa: E402

log = logging.getLogger("aiortc_client")


# --- Generated media -------------------------------------------------------------


class PatternVideoTrack(MediaStreamTrack):
    """Moving colour bars plus a sweeping white box, at a fixed frame rate."""

    kind = "video"

    def __init__(self, width: int, height: int, fps: int):
        super().__init__()
        self.width, self.height, self.fps = width, height, fps
        self._start: float | None = None
        self._n = 0
        x = np.arange(width, dtype=np.uint16)
        y = np.arange(height, dtype=np.uint16)[:, None]
        base = np.zeros((height, width, 3), dtype=np.uint8)
        base[..., 0] = (x * 255 // max(1, width - 1)).astype(np.uint8)
        base[..., 1] = (y * 255 // max(1, height - 1)).astype(np.uint8)
        base[..., 2] = ((x[None, :] + y) % 256).astype(np.uint8)
        self._base = base
        self.frames_sent = 0

    async def recv(self) -> VideoFrame:
        if self.readyState != "live":
            raise MediaStreamError
        now = time.monotonic()
        if self._start is None:
            self._start = now
        target = self._start + self._n / self.fps
        if target > now:
            await asyncio.sleep(target - now)
        n = self._n
        self._n += 1
        img = np.roll(self._base, shift=(n * 4) % self.width, axis=1)
        box = max(8, self.height // 6)
        bx = (n * 6) % max(1, self.width - box)
        by = int((self.height - box) * (0.5 + 0.4 * math.sin(n / 10)))
        img[by:by + box, bx:bx + box] = 255
        frame = VideoFrame.from_ndarray(img, format="bgr24")
        frame.pts = n * (90000 // self.fps)
        frame.time_base = fractions.Fraction(1, 90000)
        self.frames_sent += 1
        return frame


class ToneAudioTrack(MediaStreamTrack):
    """A quiet 440 Hz tone, 20 ms frames of 48 kHz mono s16."""

    kind = "audio"
    RATE = 48000
    SAMPLES = 960

    def __init__(self):
        super().__init__()
        self._start: float | None = None
        self._n = 0
        t = np.arange(self.RATE) / self.RATE  # 1 s = 50 frames, whole cycles of 440 Hz
        self._wave = (np.sin(2 * np.pi * 440 * t) * 2000).astype(np.int16)

    async def recv(self) -> AudioFrame:
        if self.readyState != "live":
            raise MediaStreamError
        now = time.monotonic()
        if self._start is None:
            self._start = now
        target = self._start + self._n * self.SAMPLES / self.RATE
        if target > now:
            await asyncio.sleep(target - now)
        off = (self._n % 50) * self.SAMPLES
        samples = self._wave[off:off + self.SAMPLES].reshape(1, -1)
        frame = AudioFrame.from_ndarray(samples, format="s16", layout="mono")
        frame.sample_rate = self.RATE
        frame.pts = self._n * self.SAMPLES
        frame.time_base = fractions.Fraction(1, self.RATE)
        self._n += 1
        return frame


# --- Signalling --------------------------------------------------------------------


class SignallingError(Exception):
    def __init__(self, method: str, code: str, message: str, url: str | None = None):
        super().__init__(f"{method}: {code}: {message}")
        self.method, self.code, self.url = method, code, url


class Signalling:
    def __init__(self, ws: aiohttp.ClientWebSocketResponse, on_event):
        self.ws = ws
        self.on_event = on_event
        self.next_id = 1
        self.pending: dict[int, tuple[str, asyncio.Future]] = {}
        self.errors: list[str] = []
        self.closed = asyncio.Event()
        self._reader = asyncio.create_task(self._read())

    async def request(self, method: str, data: dict | None = None, timeout: float = 20.0) -> dict:
        if self.closed.is_set():
            raise SignallingError(method, "socket_closed", "socket is closed")
        rid = self.next_id
        self.next_id += 1
        msg: dict = {"id": rid, "method": method}
        if data is not None:
            msg["data"] = data
        fut = asyncio.get_running_loop().create_future()
        self.pending[rid] = (method, fut)
        await self.ws.send_str(json.dumps(msg))
        try:
            return await asyncio.wait_for(fut, timeout)
        except asyncio.TimeoutError:
            raise SignallingError(method, "timeout", f"no response after {timeout} s") from None
        finally:
            self.pending.pop(rid, None)

    async def _read(self):
        try:
            async for m in self.ws:
                if m.type != aiohttp.WSMsgType.TEXT:
                    self.errors.append(f"non-text frame {m.type}")
                    continue
                try:
                    msg = json.loads(m.data)
                except ValueError:
                    self.errors.append(f"unparsable frame {m.data[:200]!r}")
                    continue
                if msg.get("response") is True:
                    entry = self.pending.get(msg.get("id"))
                    if entry is None:
                        self.errors.append(f"unmatched response {m.data[:300]}")
                        continue
                    method, fut = entry
                    if fut.done():
                        continue
                    if msg.get("ok"):
                        fut.set_result(msg.get("data") or {})
                    else:
                        err = msg.get("error") or {}
                        fut.set_exception(SignallingError(method, err.get("code", "?"), err.get("message", ""),
                                                          err.get("url")))
                elif isinstance(msg.get("event"), str):
                    try:
                        self.on_event(msg["event"], msg.get("data") or {})
                    except Exception as e:  # noqa: BLE001
                        self.errors.append(f"event {msg['event']}: {e!r}")
                else:
                    self.errors.append(f"unexpected frame {m.data[:200]}")
        finally:
            self.closed.set()
            for method, fut in self.pending.values():
                if not fut.done():
                    fut.set_exception(SignallingError(method, "socket_closed", "socket closed"))


# --- Access tokens -------------------------------------------------------------------


def http_origin(ws_url: str) -> str:
    """The http(s) origin of the node behind a ws(s):// signalling URL."""
    u = urllib.parse.urlsplit(ws_url)
    return f"{'https' if u.scheme in ('wss', 'https') else 'http'}://{u.netloc}"


async def fetch_dev_token(http: aiohttp.ClientSession, ws_url: str, room: str, identity: str,
                          grants: list[str], timeout: float = 10.0) -> str:
    """A token from GET /api/dev-token of the node behind `ws_url` (a node in
    `[auth] mode = "dev"`); a SignallingError `token_required` when that node
    serves none (404), `token_fetch_failed` on any other failure."""
    url = http_origin(ws_url) + "/api/dev-token"
    params = [("room", room), ("identity", identity)] + [("grant", g) for g in grants]
    try:
        async with http.get(url, params=params, timeout=aiohttp.ClientTimeout(total=timeout)) as r:
            if r.status == 404:
                raise SignallingError("token", "token_required",
                                      f"{url} answers 404: this node needs an access token (give --token)")
            text = await r.text()
            if r.status != 200:
                raise SignallingError("token", "token_fetch_failed", f"{url}: HTTP {r.status}: {text.strip()[:200]}")
            token = json.loads(text).get("token")
    except SignallingError:
        raise
    except Exception as e:  # noqa: BLE001
        raise SignallingError("token", "token_fetch_failed", f"{url}: {type(e).__name__}: {e}") from None
    if not isinstance(token, str) or not token:
        raise SignallingError("token", "token_fetch_failed", f"{url}: no token in the answer")
    return token


# --- One session: a signalling socket and what it joined ---------------------------


class Moved(Exception):
    """The session ended (socket lost, or `reconnect`): join again elsewhere."""


@dataclass
class Remote:
    producer_id: str
    peer_id: str
    kind: str
    closed: bool = False
    consumer_id: str | None = None
    frames: int = 0
    first_frame_at: float | None = None
    width: int = 0
    height: int = 0
    task: asyncio.Task | None = None


# How long a producer whose consume failed has to be announced closed before
# the failure counts as an error (a producer of a node that just died is
# still listed until the cluster declares that node down).
CONSUME_GRACE = 15.0


@dataclass
class Session:
    """One signalling socket to one node and the participant it joined: its
    transports, producers and consumers, and what it received."""

    args: argparse.Namespace
    url: str
    http: aiohttp.ClientSession | None = None
    ws: aiohttp.ClientWebSocketResponse | None = None
    sig: Signalling | None = None
    device: Device | None = None
    peer_id: str | None = None
    joined_at: float = 0.0
    names: dict[str, str] = field(default_factory=dict)  # peerId -> displayName
    remotes: dict[str, Remote] = field(default_factory=dict)  # producerId -> Remote
    errors: list[str] = field(default_factory=list)
    send_transport: object = None
    recv_transport: object = None
    recv_ready: asyncio.Future | None = None
    # (reason, url or None) once the server sent `reconnect`.
    moved: asyncio.Future | None = None
    producers: list = field(default_factory=list)
    video_track: PatternVideoTrack | None = None
    tasks: set = field(default_factory=set)
    leaving: bool = False

    # -- helpers
    def _spawn(self, coro):
        t = asyncio.create_task(coro)
        self.tasks.add(t)
        t.add_done_callback(self.tasks.discard)
        return t

    @property
    def over(self) -> bool:
        """The socket closed, or the server asked us to reconnect."""
        return self.sig.closed.is_set() or self.moved.done()

    def all_errors(self) -> list[str]:
        return self.errors + (self.sig.errors if self.sig else [])

    @staticmethod
    def _candidates(cands: list[dict]) -> list[dict]:
        # mediasoup >= 3.13 names the field `address` (the old `ip` is gone in
        # some versions); pymediasoup's model wants `ip`. Accept either.
        out = []
        for c in cands:
            c = dict(c)
            if "ip" not in c and "address" in c:
                c["ip"] = c["address"]
            out.append(c)
        return out

    def _make_transport(self, direction: str, info: dict):
        kwargs = dict(
            id=info["id"],
            iceParameters=IceParameters.model_validate(info["iceParameters"]),
            iceCandidates=[IceCandidate.model_validate(c) for c in self._candidates(info["iceCandidates"])],
            dtlsParameters=DtlsParameters.model_validate(info["dtlsParameters"]),
            sctpParameters=None,
            iceServers=[],
        )
        if direction == "send":
            t = self.device.createSendTransport(**kwargs)
        else:
            t = self.device.createRecvTransport(**kwargs)

        @t.on("connect")
        async def on_connect(dtlsParameters):
            await self.sig.request("connectWebRtcTransport", {
                "transportId": t.id,
                "dtlsParameters": dtlsParameters.model_dump(exclude_none=True),
            })

        @t.on("connectionstatechange")
        async def on_state(state):
            log.info("%s transport %s", direction, state)
            if state == "failed" and not self.leaving and not self.over:
                self.errors.append(f"{direction} transport failed")

        if direction == "send":
            @t.on("produce")
            async def on_produce(kind, rtpParameters, appData):
                r = await self.sig.request("produce", {
                    "transportId": t.id,
                    "kind": kind,
                    "rtpParameters": rtpParameters.model_dump(exclude_none=True),
                    "appData": appData or {},
                })
                return r["id"]

        return t

    # -- events
    def on_event(self, name: str, data: dict):
        if name == "peerJoined":
            self.names[data["peerId"]] = data.get("displayName", "")
            log.info("peer joined %s (%s)", data.get("displayName"), data["peerId"])
        elif name == "peerLeft":
            for r in self.remotes.values():
                if r.peer_id == data["peerId"]:
                    r.closed = True
        elif name == "newProducer":
            self.note_producer(data)
        elif name in ("producerClosed", "consumerClosed"):
            r = self.remotes.get(data.get("producerId"))
            if r:
                r.closed = True
        elif name in ("producerPaused", "producerResumed"):
            pass
        elif name == "reconnect":
            log.info("asked to reconnect: %s (url %s)", data.get("reason"), data.get("url"))
            if not self.moved.done():
                self.moved.set_result((data.get("reason") or "reconnect", data.get("url")))
        else:
            log.info("ignoring event %s", name)

    def note_producer(self, p: dict):
        pid = p["producerId"]
        if pid in self.remotes or p["peerId"] == self.peer_id:
            return
        if self.leaving or (self.moved is not None and self.moved.done()):
            return  # this session is being replaced: consume nothing more
        r = Remote(producer_id=pid, peer_id=p["peerId"], kind=p["kind"])
        self.remotes[pid] = r
        self._spawn(self.consume(r))

    async def consume(self, r: Remote):
        try:
            transport = await self.recv_ready  # events may precede the recv transport
            if r.closed:
                return
            resp = await self.sig.request("consume", {
                "transportId": transport.id,
                "producerId": r.producer_id,
                "rtpCapabilities": self.device.recvRtpCapabilities.model_dump(exclude_none=True),
            })
            consumer = await transport.consume(
                id=resp["id"],
                producerId=resp["producerId"],
                kind=resp["kind"],
                rtpParameters=RtpParameters.model_validate(resp["rtpParameters"]),
                streamId=r.peer_id,
            )
            r.consumer_id = consumer.id
            r.task = self._spawn(self.count_frames(r, consumer.track))
            await self.sig.request("resumeConsumer", {"consumerId": consumer.id})
            log.info("consuming %s of %s", r.kind, self.names.get(r.peer_id, r.peer_id))
        except Exception as e:  # noqa: BLE001
            # A producer on a node that just went away fails to consume until
            # the room drops it: only a failure that stays unexplained counts.
            deadline = time.monotonic() + CONSUME_GRACE
            while not (r.closed or self.leaving or self.over) and time.monotonic() < deadline:
                await asyncio.sleep(0.25)
            if r.closed or self.leaving or self.over:
                log.info("consume %s of %s abandoned: %r", r.kind, r.peer_id, e)
                return
            self.errors.append(f"consume {r.kind} of {r.peer_id}: {e!r}")

    async def count_frames(self, r: Remote, track):
        while True:
            try:
                frame = await track.recv()
            except MediaStreamError:
                return
            except asyncio.CancelledError:
                return
            r.frames += 1
            if r.first_frame_at is None:
                r.first_frame_at = time.monotonic()
            if r.kind == "video":
                r.width, r.height = frame.width, frame.height

    # -- life
    async def open(self, http: aiohttp.ClientSession, timeout: float):
        self.http = http
        self.ws = await asyncio.wait_for(http.ws_connect(self.url, heartbeat=None, max_msg_size=0), timeout)
        self.sig = Signalling(self.ws, self.on_event)
        loop = asyncio.get_running_loop()
        self.recv_ready = loop.create_future()
        self.moved = loop.create_future()

    async def join(self):
        """Joins, makes the transports and publishes (unless --no-send)."""
        a = self.args
        token = a.token or await fetch_dev_token(
            self.http, self.url, a.room, a.name, ["publish", "subscribe"] if a.send else ["subscribe"])
        j = await self.sig.request("join", {"room": a.room, "displayName": a.name, "protocolVersion": 1,
                                            "token": token})
        self.peer_id = j["peerId"]
        self.joined_at = time.monotonic()
        log.info("joined %s as %s through %s", j.get("roomId"), self.peer_id, self.url)
        for p in j.get("peers", []):
            self.names[p["peerId"]] = p.get("displayName", "")
        for p in j.get("producers", []):
            self.note_producer(p)

        self.device = Device(handlerFactory=AiortcHandler.createFactory())
        await self.device.load(RtpCapabilities.model_validate(j["routerRtpCapabilities"]))

        try:
            info = await self.sig.request("createWebRtcTransport", {"direction": "recv"})
            self.recv_transport = self._make_transport("recv", info)
            self.recv_ready.set_result(self.recv_transport)
        except Exception as e:
            self.recv_ready.set_exception(e)
            self.recv_ready.exception()  # mark retrieved
            raise

        if a.send:
            info = await self.sig.request("createWebRtcTransport", {"direction": "send"})
            self.send_transport = self._make_transport("send", info)
            self.video_track = PatternVideoTrack(a.width, a.height, a.fps)
            self.producers.append(await self.send_transport.produce(track=self.video_track, stopTracks=True))
            if a.audio:
                self.producers.append(await self.send_transport.produce(track=ToneAudioTrack(), stopTracks=True))
            log.info("publishing %d track(s)", len(self.producers))

    async def ended(self):
        """Completes once the session is over (see `over`)."""
        closed = asyncio.ensure_future(self.sig.closed.wait())
        try:
            await asyncio.wait({closed, self.moved}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            closed.cancel()

    async def close(self, leave: bool):
        """Leaves (when asked and still connected) and closes everything."""
        self.leaving = True
        if leave and self.sig and not self.sig.closed.is_set():
            try:
                await self.sig.request("leave", None, timeout=3)
            except Exception as e:  # noqa: BLE001
                log.info("leave: %r", e)
        for t in list(self.tasks):
            t.cancel()
        for tr in (self.send_transport, self.recv_transport):
            if tr is not None:
                try:
                    await asyncio.wait_for(tr.close(), 5)
                except Exception as e:  # noqa: BLE001
                    log.info("closing transport: %r", e)
        if self.ws is not None and not self.ws.closed:
            try:
                await asyncio.wait_for(self.ws.close(), 3)
            except Exception as e:  # noqa: BLE001
                log.info("closing socket: %r", e)

    # -- checks
    def _expected(self) -> list[str]:
        """Peer ids whose media we must receive."""
        names = self.args.expect
        if names:
            return [pid for pid, n in self.names.items() if n in names]
        return list({r.peer_id for r in self.remotes.values()})

    def check(self) -> tuple[bool, str]:
        a = self.args
        if a.expect:
            missing = [n for n in a.expect if n not in self.names.values()]
            if missing:
                return False, f"peers not seen yet: {missing}"
        peers = self._expected()
        if len(peers) < a.min_peers:
            return False, f"{len(peers)} peer(s) with media, want {a.min_peers}"
        # A peer that rejoined elsewhere appears twice under one name: its
        # name is satisfied by whichever of its peer ids delivers.
        by_name: dict[str, list[str]] = {}
        for pid in peers:
            by_name.setdefault(self.names.get(pid, pid), []).append(pid)
        for who, pids in by_name.items():
            rs = [r for r in self.remotes.values() if r.peer_id in pids and not r.closed]
            v = [r for r in rs if r.kind == "video"]
            au = [r for r in rs if r.kind == "audio"]
            if not v or max(r.frames for r in v) < a.min_frames:
                return False, f"{who}: video frames {[r.frames for r in v]} < {a.min_frames}"
            if a.audio_check and (not au or max(r.frames for r in au) < a.min_audio_frames):
                return False, f"{who}: audio frames {[r.frames for r in au]} < {a.min_audio_frames}"
        return True, "ok"

    def print_table(self):
        sent = self.video_track.frames_sent if self.video_track else 0
        print(f"aiortc receive table (peer {self.peer_id} via {self.url}, sent {sent} video frames):")
        print(f"  {'from':<16} {'kind':<6} {'frames':>7} {'size':>9}  state")
        for r in sorted(self.remotes.values(), key=lambda r: (self.names.get(r.peer_id, ""), r.kind)):
            size = f"{r.width}x{r.height}" if r.kind == "video" else "-"
            state = "closed" if r.closed else ("consuming" if r.consumer_id else "pending")
            print(f"  {self.names.get(r.peer_id, r.peer_id)[:16]:<16} {r.kind:<6} {r.frames:>7} {size:>9}  {state}")
        for e in self.all_errors():
            print(f"  error: {e}")
        sys.stdout.flush()


# --- Participant: sessions one after another ----------------------------------------


class Participant:
    """Joins through the first URL and keeps publishing and receiving: when
    its session ends (the socket is lost, or `reconnect`), it joins again
    through the `reconnect` event's URL (first, then leaves the old socket),
    or else through the next URL of the list, each in turn, with backoff."""

    def __init__(self, args: argparse.Namespace):
        self.args = args
        self.urls: list[str] = args.urls
        self.at = 0  # index in urls of the current node
        self.session: Session | None = None
        self.rejoins = 0
        self.http: aiohttp.ClientSession | None = None
        self.stdin_line: asyncio.Future | None = None
        self.closing: set = set()

    async def _try_join(self, url: str) -> Session:
        s = Session(self.args, url)
        try:
            await s.open(self.http, 10)
            await s.join()
            return s
        except BaseException:
            await s.close(leave=True)
            raise

    async def _join_any(self, first: list[str], deadline: float) -> Session:
        """Joins through the first URL that admits us: `first`, then the list
        from the one after the current node, round after round."""
        rotation = self.urls[self.at + 1:] + self.urls[:self.at + 1]
        order = list(dict.fromkeys(first + rotation))
        round_ = 0
        while True:
            round_ += 1
            queue = list(order)
            while queue:
                url = queue.pop(0)
                try:
                    s = await self._try_join(url)
                except SignallingError as e:
                    redirect = getattr(e, "url", None)
                    print(f"aiortc: join through {url} failed: {e}", flush=True)
                    if e.code == "draining" and redirect and redirect not in queue:
                        queue.insert(0, redirect)
                    continue
                except Exception as e:  # noqa: BLE001
                    print(f"aiortc: join through {url} failed: {type(e).__name__}: {e}", flush=True)
                    continue
                if url in self.urls:
                    self.at = self.urls.index(url)
                return s
            if time.monotonic() > deadline:
                raise RuntimeError(f"no node admitted us after {round_} round(s) of {order}")
            await asyncio.sleep(min(10.0, 0.5 * 2 ** min(round_ - 1, 5)))

    async def _move(self):
        """The current session is over: joins again and drops the old one."""
        old = self.session
        t = time.monotonic()
        reason, url = old.moved.result() if old.moved.done() else ("connection lost", None)
        if not url:
            # Nothing to keep: the old participant is gone (or going).
            self._close_later(old, leave=False)
        new = await self._join_any([url] if url else [], t + self.args.timeout)
        if url:
            # Make before break: the old one leaves once the new one is in.
            self._close_later(old, leave=True)
        self.session = new
        self.rejoins += 1
        print(f"AIORTC REJOINED n={self.rejoins} via={new.url} peer={new.peer_id} "
              f"after={time.monotonic() - t:.2f}s reason={reason!r}", flush=True)

    def _close_later(self, s: Session, leave: bool):
        t = asyncio.ensure_future(s.close(leave))
        self.closing.add(t)
        t.add_done_callback(self.closing.discard)

    async def _wait_for_media(self) -> bool:
        """True once the floors are reached; False on errors or timeout;
        Moved when the session ends first."""
        s = self.session
        deadline = s.joined_at + self.args.timeout
        why = "not checked"
        while time.monotonic() < deadline:
            if s.over:
                raise Moved()
            if s.all_errors():
                why = "errors: " + "; ".join(s.all_errors())
                break
            ok, why = s.check()
            if ok:
                return True
            await asyncio.sleep(0.5)
        print(f"AIORTC FAIL: {why}", flush=True)
        return False

    def _watch_stdin(self):
        # A daemon thread reads stdin so that exiting never waits on it.
        loop = asyncio.get_running_loop()
        self.stdin_line = loop.create_future()

        def reader():
            try:
                sys.stdin.readline()
            finally:
                loop.call_soon_threadsafe(lambda: self.stdin_line.done() or self.stdin_line.set_result(True))

        threading.Thread(target=reader, daemon=True).start()

    async def _hold(self, until: float):
        """Keeps publishing after PASS: until a stdin line (--hold-stdin),
        --hold seconds, or `until`; raises Moved if the session ends first."""
        a = self.args
        waits = {asyncio.ensure_future(self.session.ended())}
        if a.hold_stdin:
            waits.add(self.stdin_line)
        left = max(0.0, until - time.monotonic())
        try:
            done, _ = await asyncio.wait(waits, timeout=left, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for w in waits:
                if w is not self.stdin_line:
                    w.cancel()
        if self.session.over and not (self.stdin_line and self.stdin_line.done()):
            raise Moved()
        if not done and a.hold_stdin:
            print("aiortc: hold timed out, leaving", flush=True)

    async def run(self) -> int:
        a = self.args
        t0 = time.monotonic()
        ok = False
        async with aiohttp.ClientSession() as http:
            self.http = http
            if a.hold_stdin:
                self._watch_stdin()
            try:
                self.session = await self._join_any(self.urls[:1], t0 + a.timeout)
                print(f"aiortc: joined as {self.session.peer_id} via {self.session.url} "
                      f"in {time.monotonic() - t0:.2f}s", flush=True)
                hold_until = None
                while True:
                    try:
                        if not await self._wait_for_media():
                            self.session.print_table()
                            break
                        self.session.print_table()
                        print(f"AIORTC PASS peer={self.session.peer_id} rejoins={self.rejoins} "
                              f"elapsed={time.monotonic() - t0:.1f}s", flush=True)
                        if hold_until is None:
                            hold_until = time.monotonic() + (a.hold_max if a.hold_stdin else a.hold)
                        await self._hold(hold_until)
                        ok = True
                        break
                    except Moved:
                        print("aiortc: session over, joining again", flush=True)
                        await self._move()
            finally:
                if self.session is not None:
                    await self.session.close(leave=True)
                if self.closing:
                    await asyncio.wait(self.closing, timeout=10)
            errors = self.session.all_errors() if self.session else ["never joined"]
        if self.rejoins:
            print(f"aiortc: rejoined {self.rejoins} time(s)", flush=True)
        return 0 if ok and not errors else 1


def main() -> int:
    global HOST_IP
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--url", action="append", default=[],
                    help="signalling URL (repeatable, or comma-separated): joins through the first, "
                         "rejoins through the next ones in turn (default ws://127.0.0.1:3000/ws)")
    ap.add_argument("--room", required=True)
    ap.add_argument("--name", default="aiortc")
    ap.add_argument("--expect", action="append", default=[],
                    help="display name of a peer whose media must be received (repeatable)")
    ap.add_argument("--min-peers", type=int, default=1)
    ap.add_argument("--min-frames", type=int, default=30, help="decoded video frames per expected peer")
    ap.add_argument("--min-audio-frames", type=int, default=50, help="decoded audio frames (20 ms) per expected peer")
    ap.add_argument("--no-audio-check", dest="audio_check", action="store_false")
    ap.add_argument("--no-audio", dest="audio", action="store_false", help="publish video only")
    ap.add_argument("--no-send", dest="send", action="store_false", help="receive only")
    ap.add_argument("--res", default="320x240")
    ap.add_argument("--fps", type=int, default=15)
    ap.add_argument("--timeout", type=float, default=60.0, help="seconds to reach the floors")
    ap.add_argument("--hold", type=float, default=0.0, help="seconds to keep publishing after PASS")
    ap.add_argument("--hold-stdin", action="store_true", help="keep publishing after PASS until a stdin line/EOF")
    ap.add_argument("--hold-max", type=float, default=120.0)
    ap.add_argument("--host-ip", default="127.0.0.1", help="the ICE host candidate to offer")
    ap.add_argument("--token", default="",
                    help="the access token of every join (default: a fresh one from each node's "
                         "GET /api/dev-token, for nodes in [auth] mode = \"dev\")")
    ap.add_argument("-v", "--verbose", action="store_true")
    args = ap.parse_args()
    args.width, args.height = (int(x) for x in args.res.split("x"))
    args.urls = [u.strip() for arg in args.url for u in arg.split(",") if u.strip()] or ["ws://127.0.0.1:3000/ws"]
    HOST_IP = args.host_ip
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="%(asctime)s %(name)s %(levelname)s %(message)s")
    # Until the first keyframe arrives, every VP8 delta frame logs a decode
    # warning; the assertions count decoded frames, so keep the log readable.
    logging.getLogger("aiortc.rtcrtpreceiver").setLevel(logging.ERROR)
    try:
        rc = asyncio.run(asyncio.wait_for(Participant(args).run(), args.timeout + args.hold_max + 60))
    except Exception as e:  # noqa: BLE001
        print(f"AIORTC FAIL: {type(e).__name__}: {e}", flush=True)
        return 1
    return rc


if __name__ == "__main__":
    sys.exit(main())
