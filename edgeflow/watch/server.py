"""The live page's HTTP/WebSocket server: aiohttp on its own thread and event loop.

Routes: ``/`` the page, ``/ws`` a WebSocket that pushes statistics (JSON, once a second) and
pictures (binary: frame index and the camera JPEG's length as two little-endian uint32, then the
camera JPEG, then the flow JPEG), ``/frame.jpg`` and ``/flow.jpg`` the newest pictures,
``/stats.json`` the newest statistics.

Why this shape: the device must never wait for a browser. Each client has one sender coroutine
that awaits its own socket; while it is busy, newer pictures replace older ones, so a slow or
distant browser sees fewer frames, never older ones, and never slows the stream. Encoding runs
in a worker thread of this loop, and only for pictures somebody is going to receive.
"""

from __future__ import annotations

import asyncio
import json
import math
import struct
import threading
import time
from importlib import resources
from typing import Optional

import numpy as np
from aiohttp import WSMsgType, web

from edgeflow.errors import EdgeflowError

STAGE_ORDER = ("end_to_end", "wait", "preprocess", "encode", "decode", "inference", "postprocess", "sink")
TICK_S = 1.0
THERMAL_EVERY = 5  # ticks between temperature reads
MAX_PICTURE_INTERVAL_S = 2.0  # the CPU governor never goes below one picture every 2 s


def encode_jpeg(rgb: np.ndarray, quality: int = 80) -> bytes:
    """JPEG bytes of an HxWx3 uint8 RGB image: Pillow, else OpenCV."""
    try:
        import io

        from PIL import Image

        buf = io.BytesIO()
        Image.fromarray(rgb).save(buf, format="JPEG", quality=quality)
        return buf.getvalue()
    except ImportError:
        pass
    from edgeflow.optional import cv2_or_none

    cv2 = cv2_or_none()
    if cv2 is None:
        raise EdgeflowError("--serve needs Pillow or OpenCV to encode pictures: pip install Pillow")
    ok, data = cv2.imencode(".jpg", np.ascontiguousarray(rgb[..., ::-1]), [int(cv2.IMWRITE_JPEG_QUALITY), quality])
    return data.tobytes()


#: Pictures are sent at most this wide: the frame is subsampled to it, the flow colour-coded at
#: half of it (flow is smooth; colouring was the costly part: flow_to_color takes 11 ms at 320x240
#: on a shared x86 core); the browser scales both to the same size.
PICTURE_WIDTH = 320


#: Side of the (u, v) table the preview colours come from.
LUT_SIZE = 129
_LUT: Optional[np.ndarray] = None


def preview_flow_color(flow: np.ndarray) -> np.ndarray:
    """The Middlebury colour wheel of ``edgeflow.flow.visualize.flow_to_color`` (scaled to this
    flow's largest magnitude), looked up in a LUT_SIZE x LUT_SIZE table of (u, v) instead of computed
    per pixel: a fifth of the CPU, and a live preview does not need the last 1/64 of a radius."""
    global _LUT
    if _LUT is None:
        from edgeflow.flow.visualize import flow_to_color

        g = np.linspace(-1.0, 1.0, LUT_SIZE)
        uu, vv = np.meshgrid(g, g)
        shrink = np.minimum(1.0, 1.0 / np.maximum(np.hypot(uu, vv), 1e-9))  # cells past the rim: the rim's colour
        _LUT = flow_to_color(np.stack([uu * shrink, vv * shrink], axis=-1), max_flow=1.0)
    f = np.asarray(flow, dtype=np.float32)
    finite = np.isfinite(f).all(axis=-1)
    f = np.where(finite[..., None], f, 0.0)
    peak = float(np.sqrt((f * f).sum(axis=-1).max())) if f.size else 0.0
    half = (LUT_SIZE - 1) / 2
    idx = np.clip(np.rint(f * (half / (peak + 1e-5)) + half), 0, LUT_SIZE - 1).astype(np.intp)
    out = _LUT[idx[..., 1], idx[..., 0]]
    out[~finite] = 0
    return out


def picture(frame: np.ndarray, flow: np.ndarray) -> tuple[bytes, bytes]:
    """(camera JPEG, colour-wheel flow JPEG) of one result."""
    step = max(1, -(-frame.shape[1] // PICTURE_WIDTH))
    flow_step = max(1, -(-flow.shape[1] // (PICTURE_WIDTH // 2)))
    return (encode_jpeg(np.ascontiguousarray(frame[::step, ::step])),
            encode_jpeg(preview_flow_color(flow[::flow_step, ::flow_step])))


def _q(values) -> list:
    x = np.asarray(values, dtype=np.float64)
    med, p95 = np.percentile(x, (50, 95))
    return [round(float(med), 3), round(float(p95), 3)]


class _Client:
    def __init__(self, ws):
        self.ws = ws
        self.seen_version = -1
        self.stats_seq = -1
        self.picture_id = None
        self.pictures = 0


class WatchServer:
    def __init__(self, sink, host: str, port: int, info: dict):
        self.sink = sink
        self.host, self.port = host, int(port)
        self.info = {k: info.get(k) for k in ("model", "backend", "source", "live", "cached", "drop_policy", "artifact")}
        self.loop: Optional[asyncio.AbstractEventLoop] = None
        self._thread: Optional[threading.Thread] = None
        self._ready = threading.Event()
        self._error: Optional[BaseException] = None
        self._clients: set = set()
        self._version = 0
        self._cond: Optional[asyncio.Condition] = None
        self._pic_event: Optional[asyncio.Event] = None
        self.jpeg: Optional[tuple] = None  # (frame index, camera JPEG, flow JPEG)
        self.stats: dict = {}
        self.stats_seq = 0
        self.history: list = []
        self._t0 = time.monotonic()
        self._frames = 0
        self._results = 0
        self._drops: dict = {}
        self._recent: list = []  # result times over the last few seconds (fps)
        self.pictures_encoded = 0
        self._ticks = 0
        self._gov_last: Optional[tuple] = None
        self.cpu_share: Optional[float] = None  # page CPU / process CPU over the last few seconds
        self._temps: dict = {}
        #: CPU seconds this page has cost: its event loop thread and the encoding worker (what an
        #: open page adds to the device; benchmarks/bench_serve.py reports it).
        self.loop_cpu_s = 0.0
        self.encode_cpu_s = 0.0
        self._loop_cpu0 = 0.0

    # -- life cycle (called from the stream's thread) ---------------------------------------------
    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="edgeflow-watch", daemon=True)
        self._thread.start()
        if not self._ready.wait(15):
            raise EdgeflowError("the live page's server did not start within 15 s")
        if self._error is not None:
            err = self._error
            raise EdgeflowError(f"cannot serve the live page on {self.host}:{self.port} "
                                f"({getattr(err, 'strerror', None) or err}); choose another --serve HOST:PORT") from None

    def picture_ready(self) -> None:
        loop = self.loop
        if loop is not None and self._pic_event is not None:
            try:
                loop.call_soon_threadsafe(self._pic_event.set)
            except RuntimeError:  # loop closed: shutting down
                pass

    def stop(self, report=None) -> None:
        loop = self.loop
        if loop is None or self._thread is None:
            return
        try:
            loop.call_soon_threadsafe(loop.stop)
        except RuntimeError:
            pass
        self._thread.join(10)
        self._thread = None

    # -- the loop's thread ------------------------------------------------------------------------
    @property
    def cpu_s(self) -> float:
        return self.loop_cpu_s + self.encode_cpu_s

    def _run(self) -> None:
        self._loop_cpu0 = time.thread_time()
        loop = asyncio.new_event_loop()
        asyncio.set_event_loop(loop)
        try:
            loop.run_until_complete(self._startup())
        except BaseException as err:  # bind failure: reported to start()
            self._error = err
            self._ready.set()
            loop.close()
            return
        self.loop = loop
        self._ready.set()
        try:
            loop.run_forever()
        finally:
            try:
                loop.run_until_complete(self._shutdown())
            finally:
                self.loop_cpu_s = time.thread_time() - self._loop_cpu0
                loop.close()
                self.loop = None

    async def _startup(self) -> None:
        self._cond = asyncio.Condition()
        self._pic_event = asyncio.Event()
        app = web.Application()
        app.router.add_get("/", self._page)
        app.router.add_get("/ws", self._ws)
        app.router.add_get("/frame.jpg", self._frame)
        app.router.add_get("/flow.jpg", self._frame)
        app.router.add_get("/stats.json", self._stats_json)
        self._runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port, reuse_address=True)
        try:
            await site.start()
        except BaseException:
            await self._runner.cleanup()
            raise
        self.port = int(self._runner.addresses[0][1])
        self._tasks = [asyncio.ensure_future(self._stats_loop()), asyncio.ensure_future(self._picture_loop())]

    async def _shutdown(self) -> None:
        for task in self._tasks:
            task.cancel()
        for client in list(self._clients):
            try:
                await asyncio.wait_for(client.ws.close(), 1.0)
            except Exception:
                pass
        await self._runner.cleanup()

    # -- routes -----------------------------------------------------------------------------------
    async def _page(self, request):
        html = resources.files("edgeflow.watch").joinpath("page.html").read_text(encoding="utf-8")
        return web.Response(text=html, content_type="text/html", headers={"Cache-Control": "no-store"})

    async def _frame(self, request):
        if self.jpeg is None:
            return web.Response(status=404, text="no picture yet: open the page (pictures are made for viewers only)\n")
        which = 1 if request.path == "/frame.jpg" else 2
        return web.Response(body=self.jpeg[which], content_type="image/jpeg",
                            headers={"Cache-Control": "no-store", "X-Frame-Index": str(self.jpeg[0])})

    async def _stats_json(self, request):
        return web.json_response(self._message(with_history=True), headers={"Cache-Control": "no-store"})

    async def _ws(self, request):
        ws = web.WebSocketResponse(heartbeat=30, compress=False)  # JPEGs do not deflate: save the CPU
        await ws.prepare(request)
        client = _Client(ws)
        await ws.send_str(json.dumps(self._message(with_history=True)))
        client.stats_seq = self.stats_seq
        self._clients.add(client)
        self.sink.clients = len(self._clients)
        sender = asyncio.ensure_future(self._send_loop(client))
        try:
            async for msg in ws:  # the page sends nothing we need; this notices the close
                if msg.type == WSMsgType.ERROR:
                    break
        finally:
            sender.cancel()
            self._clients.discard(client)
            self.sink.clients = len(self._clients)
        return ws

    async def _send_loop(self, client: _Client) -> None:
        """One sender per client: waits for something newer than it sent, sends the newest."""
        try:
            while not client.ws.closed:
                async with self._cond:
                    await self._cond.wait_for(lambda: self._version != client.seen_version)
                    client.seen_version = self._version
                if client.stats_seq != self.stats_seq:
                    client.stats_seq = self.stats_seq
                    await client.ws.send_str(json.dumps(self.stats))
                jpeg = self.jpeg
                if jpeg is not None and jpeg[0] != client.picture_id:
                    client.picture_id = jpeg[0]
                    await client.ws.send_bytes(struct.pack("<II", jpeg[0] & 0xFFFFFFFF, len(jpeg[1])) + jpeg[1] + jpeg[2])
                    client.pictures += 1
        except (ConnectionError, RuntimeError, asyncio.CancelledError):
            return

    async def _bump(self) -> None:
        async with self._cond:
            self._version += 1
            self._cond.notify_all()

    # -- producers --------------------------------------------------------------------------------
    async def _picture_loop(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            await self._pic_event.wait()
            self._pic_event.clear()
            item = self.sink.latest
            if item is None or (self.jpeg is not None and self.jpeg[0] == item[0]) or not self._clients:
                continue
            try:
                camera, flow = await loop.run_in_executor(None, self._encode, item[1], item[2])
            except EdgeflowError:
                continue
            self.jpeg = (item[0], camera, flow)
            self.pictures_encoded += 1
            await self._bump()

    def _encode(self, frame, flow) -> tuple[bytes, bytes]:
        t0 = time.thread_time()
        try:
            return picture(frame, flow)
        finally:
            self.encode_cpu_s += time.thread_time() - t0

    async def _stats_loop(self) -> None:
        from edgeflow.monitoring import sysinfo

        while True:
            await asyncio.sleep(TICK_S)
            self.loop_cpu_s = time.thread_time() - self._loop_cpu0
            self._govern()
            point = self._drain()
            if self._ticks % THERMAL_EVERY == 0:  # sysfs reads are syscalls: every few seconds is plenty
                self._temps = sysinfo.thermal()
            self._ticks += 1
            temps = self._temps
            if point is not None:
                self.history.append(point)
                del self.history[: -self.sink.history_s]
            self.stats = self._message(point=point, temperatures=temps)
            self.stats_seq += 1
            await self._bump()

    def _govern(self) -> None:
        """Keep the page's CPU time under the sink's budget of the process's: over a window of
        about 3 s, stretch the picture interval by 1.3x while over, shrink it back toward 1/fps
        while under 70 % of the budget."""
        now_proc, now_page = time.process_time(), self.cpu_s
        if self._gov_last is None:
            self._gov_last = (now_proc, now_page)
            return
        d_proc, d_page = now_proc - self._gov_last[0], now_page - self._gov_last[1]
        if d_proc < 0.5 and self._ticks % 3:  # a few seconds of a busy process: a stable ratio
            return
        self._gov_last = (now_proc, now_page)
        if d_proc <= 0:
            return
        sink = self.sink
        self.cpu_share = d_page / d_proc
        if self.cpu_share > sink.cpu_budget:
            sink.picture_interval = min(MAX_PICTURE_INTERVAL_S, max(sink.picture_interval, 0.05) * 1.3)
        elif self.cpu_share < 0.7 * sink.cpu_budget:
            sink.picture_interval = max(sink._min_interval, sink.picture_interval / 1.15)

    def _drain(self) -> Optional[dict]:
        """Fold the records since the last tick into counters and one chart point."""
        records = self.sink.records
        per = {k: [] for k in STAGE_ORDER}
        now = time.monotonic()
        while records:
            index, status, reason, dropped_before, result_ts, e2e, stages = records.popleft()
            self._frames += 1
            if dropped_before:
                self._drops["source"] = self._drops.get("source", 0) + dropped_before
            if status == "dropped":
                self._drops[reason or "unknown"] = self._drops.get(reason or "unknown", 0) + 1
            elif status == "result" and e2e is not None:
                self._results += 1
                self._recent.append(result_ts)
                per["end_to_end"].append(e2e * 1e3)
                for k, v in stages.items():
                    if k in per:
                        per[k].append(v * 1e3)
        self._recent = [t for t in self._recent if now - t <= 5.0]
        if not per["end_to_end"]:
            return None
        return {"t": round(now - self._t0, 3), "n": len(per["end_to_end"]),
                "stages": {k: _q(v) for k, v in per.items() if v and max(v) > 0}}

    def _fps(self) -> Optional[float]:
        r = self._recent
        if len(r) < 2 or r[-1] <= r[0]:
            return None
        return round((len(r) - 1) / (r[-1] - r[0]), 3)

    def _message(self, point=None, temperatures=None, with_history=False) -> dict:
        drift = self.sink.drift.state() if self.sink.drift is not None else None
        slo = self.sink.slo.state() if self.sink.slo is not None else None
        msg = {"type": "stats", "info": self.info, "uptime_s": round(time.monotonic() - self._t0, 3),
               "frames": self._frames, "results": self._results, "fps": self._fps(), "drops": dict(sorted(self._drops.items())),
               "temperature_c": temperatures if temperatures is not None else (self.stats.get("temperature_c") or {}),
               "drift": drift, "slo": slo, "point": point, "viewers": len(self._clients),
               "pictures": self.pictures_encoded, "page_cpu_s": round(self.cpu_s, 4),
               "page_cpu_share": None if self.cpu_share is None else round(self.cpu_share, 4),
               "picture_interval_s": round(self.sink.picture_interval, 3)}
        if with_history:
            msg["history"] = list(self.history)
        return _json_safe(msg)


def _json_safe(obj):
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {str(k): _json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_json_safe(v) for v in obj]
    return obj
