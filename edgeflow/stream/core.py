"""``edgeflow.Stream``: source -> capture thread -> hand-off -> inference thread -> delivery -> sinks.

::

    with edgeflow.Stream(model, "clip.mp4", sinks=[JsonlSink("frames.jsonl")]) as stream:
        for result in stream:            # Result(index, frame, flow, timings, dropped, ...)
            ...
    print(stream.report.summary())

Threads, each with one job, so that only the model sits on the inference thread's critical path:

* **capture** (:mod:`edgeflow.stream.capture`): reads the source (decoding, colour conversion),
  checks each frame and writes its network tensor into a reused buffer;
* **inference** (``edgeflow-infer``): takes prepared frames off the hand-off and runs the model,
  nothing else;
* **delivery** (the caller's thread, the one iterating): flow back to frame pixels, sinks,
  records, and the caller's loop body. It is fed by a bounded queue of its own: under ``newest``
  a slow sink or loop body costs results (``sink_full`` drops, counted), never model time; under
  ``block`` (files) it holds the model back so every frame reaches the sinks.

Frames are dropped for being late in one place, the hand-off (``queue_full``), and every frame
gets exactly one record, written by the delivery thread in frame order.

Shutdown is one path for every ending (end of source, frame/duration limit, ``stop()``,
Ctrl-C in the loop, an exception in a sink or the model): stop and join the capture and inference
threads, turn whatever is still queued into ``stopped`` drop records (in frame order), build the
report, close the sinks, write the report file, close what the stream opened. The library never
installs signal handlers; the CLI does and calls :meth:`Stream.stop`.
"""

from __future__ import annotations

import heapq
import itertools
import threading
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable, Iterator, Optional

from edgeflow.errors import EdgeflowError, InputError
from edgeflow.metrics import LatencyRecorder, LatencyReport
from edgeflow.stream.capture import BufferPool, CaptureThread, Prepared
from edgeflow.stream.handoff import END, Handoff
from edgeflow.stream.pairs import PairRunner
from edgeflow.stream.records import DROPPED, REFERENCE, RESULT, FrameRecord, Result

DROP_POLICIES = ("auto", "newest", "block")
#: How long close() waits for the capture thread before closing the source under it.
JOIN_TIMEOUT_S = 2.0
#: How long close() waits for the inference thread to finish the run in progress.
INFER_JOIN_TIMEOUT_S = 60.0


class _Out:
    """What the inference thread hands to the delivery side: a result, a reference or a drop."""

    __slots__ = ("kind", "frame", "raw", "reason", "stages", "geometry", "prev_index", "gap")

    def __init__(self, kind, frame, raw=None, reason=None, stages=None, geometry=None, prev_index=None, gap=0):
        self.kind, self.frame, self.raw, self.reason = kind, frame, raw, reason
        self.stages, self.geometry = stages or {}, geometry
        self.prev_index, self.gap = prev_index, gap  # the pair: flow from prev_index, gap frames skipped


def _heavy(out) -> bool:
    return out.kind == RESULT


def _demote(out, reason):
    """A result the sinks had no room for: its flow goes, its record stays (same place in line)."""
    return _Out(DROPPED, out.frame, reason=reason, stages=out.stages)


def _frame_of(item):
    return item.frame if isinstance(item, (Prepared, _Out)) else item


class Stream:
    """Optical flow on consecutive frames of a source, with per-frame latency accounting.

    ``model_or_path``: a :class:`~edgeflow.model.FlowModel`, an artifact directory, or ``None``
    for the bundled model (loaded and closed by the stream; ``threads``, ``spin`` and ``backend``
    apply then, see :mod:`edgeflow.budget`). ``source_or_uri``: a
    :class:`~edgeflow.sources.Source` (the stream closes it at the end) or a URI for
    :func:`~edgeflow.sources.open_source` (``source_options`` are passed along).

    ``drop_policy``: ``"newest"`` drops the oldest queued frame when the hand-off is full (live
    cameras: latency stays bounded), ``"block"`` makes the capture thread wait (files: every
    frame processed), ``"auto"`` (default) picks ``newest`` for live sources, ``block`` otherwise.
    The same policy applies to the delivery queue (``sink_queue_size`` results waiting for the
    sinks and the caller's loop). ``cache_features``: with an encoder/decoder artifact compute each
    frame's features once. ``max_frames``: read at most this many frames; ``duration``: stop
    reading after this many seconds. ``report``: path to write the JSON report to when the stream
    ends (always, on every exit path). ``sinks``: :class:`~edgeflow.sinks.base.Sink` objects or
    plain callables (called with each :class:`Result`).
    """

    def __init__(self, model_or_path=None, source_or_uri=None, *, drop_policy: str = "auto", queue_size: int = 2,
                 cache_features: bool = True, sinks=(), max_frames: Optional[int] = None,
                 duration: Optional[float] = None, report=None, backend: str = "auto", threads: Optional[int] = None,
                 spin: str = "auto", source_options: Optional[dict] = None, max_samples: int = 100_000,
                 sink_queue_size: int = 4):
        from edgeflow.budget import SPIN_CHOICES

        if source_or_uri is None:
            raise InputError("Stream needs a source: a URI such as 'clip.mp4' or 'synthetic://', or a Source object")
        if drop_policy not in DROP_POLICIES:
            raise InputError(f"drop_policy must be one of {', '.join(DROP_POLICIES)}, got {drop_policy!r}")
        if int(queue_size) < 1:
            raise InputError(f"queue_size must be >= 1, got {queue_size}")
        if int(sink_queue_size) < 1:
            raise InputError(f"sink_queue_size must be >= 1, got {sink_queue_size}")
        if max_frames is not None and int(max_frames) < 1:
            raise InputError(f"max_frames must be >= 1, got {max_frames}")
        if duration is not None and not float(duration) > 0:
            raise InputError(f"duration must be > 0 seconds, got {duration}")
        if threads is not None and int(threads) < 1:
            raise InputError(f"threads must be >= 1, got {threads}")
        if spin not in SPIN_CHOICES:
            raise InputError(f"spin must be one of {', '.join(SPIN_CHOICES)}, got {spin!r}")
        self._model_arg = model_or_path
        self._source_arg = source_or_uri
        self._source_options = dict(source_options or {})
        self._drop_policy_arg = drop_policy
        self.queue_size = int(queue_size)
        self.sink_queue_size = int(sink_queue_size)
        self.cache_features = bool(cache_features)
        self.sinks = [_as_sink(s) for s in sinks]
        self.max_frames = None if max_frames is None else int(max_frames)
        self.duration = None if duration is None else float(duration)
        self.report_path = Path(report) if report else None
        self._backend, self._threads, self._spin, self._max_samples = backend, threads, spin, max_samples

        self.model = None
        self.source = None
        self.drop_policy: Optional[str] = None
        self.report: Optional[LatencyReport] = None
        self._state = "new"  # new -> running -> closed
        self._stop = threading.Event()
        self._stop_reason: Optional[tuple] = None
        self._error: Optional[tuple] = None
        self._exhausted = False
        self._iterating = False
        self._owns_model = False
        self._capture: Optional[CaptureThread] = None
        self._infer_thread: Optional[threading.Thread] = None
        self._infer_exc: Optional[BaseException] = None
        self._handoff: Optional[Handoff] = None
        self._delivery: Optional[Handoff] = None
        self._pool = BufferPool()
        self._pairs: Optional[PairRunner] = None
        self._recorder: Optional[LatencyRecorder] = None
        self._sinks_open: list = []
        self._pending: list = []  # heap of (index, seq, frame, reason): drops waiting for their turn
        self._seq = itertools.count()
        self._started_wall: Optional[str] = None
        self._t0 = time.monotonic()
        self._cpu0 = time.process_time()
        self._rss_start: Optional[int] = None
        self._device_start: dict = {}
        self._managed = 0  # open `with` blocks / run() calls: they close the stream, not the generator
        self._in_flight = None  # the frame the inference thread is running; "error" record if it fails
        self._delivering = None  # the frame the sinks are handling; "error" record if one fails

    # -- life cycle ------------------------------------------------------------------------------
    def start(self) -> "Stream":
        """Load/open everything and start capturing (``with`` and iteration call this)."""
        if self._state != "new":
            return self
        self._state = "running"
        self._started_wall = datetime.now(timezone.utc).isoformat(timespec="seconds")
        self._t0 = time.monotonic()
        try:
            self._start()
        except BaseException as err:
            self._error = self._error or ("error", _one_line(err))
            self._stop.set()
            self._join_threads()
            self._release()
            self._state = "closed"
            self._write_start_failure()
            raise
        return self

    def _write_start_failure(self) -> None:
        """Even a stream that never started leaves a report saying why (when one was asked for)."""
        if self.report_path is None:
            return
        try:
            self.report = self._build_report([])
            self.report.write(self.report_path)
        except Exception:  # the original error is the one to show
            pass

    def _start(self) -> None:
        from edgeflow import sysinfo

        self._device_start = sysinfo.snapshot()
        self.model = self._load_model(self._model_arg)
        self.source = self._open_source(self._source_arg)
        live = bool(getattr(self.source, "is_live", False))
        self.drop_policy = self._drop_policy_arg if self._drop_policy_arg != "auto" else ("newest" if live else "block")
        self._pairs = PairRunner(self.model, self.cache_features, release=self._pool.give)
        self._recorder = LatencyRecorder(max_samples=self._max_samples)
        info = self._meta()
        for sink in self.sinks:
            sink.open(info)
            self._sinks_open.append(sink)
        self._handoff = Handoff(self.queue_size, self.drop_policy, "queue_full")
        self._delivery = Handoff(self.sink_queue_size, self.drop_policy, "sink_full", counts=_heavy, demote=_demote)
        self._rss_start = sysinfo.rss_bytes()  # after loading: growth means the stream itself
        self._cpu0 = time.process_time()
        deadline = None if self.duration is None else time.monotonic() + self.duration
        self._capture = CaptureThread(self.source, self._handoff, self._stop, self._prepare,
                                      max_frames=self.max_frames, deadline=deadline)
        self._infer_thread = threading.Thread(target=self._infer_loop, name="edgeflow-infer", daemon=True)
        self._infer_thread.start()
        self._capture.start()

    def _load_model(self, arg):
        if arg is None or isinstance(arg, (str, Path)):
            from edgeflow.model import FlowModel

            model = FlowModel.load(arg, backend=self._backend, threads=self._threads, spin=self._spin)
            self._owns_model = True
            return model
        if not all(hasattr(arg, m) for m in ("geometry", "infer_network", "last_stage_times")):
            raise InputError(f"Stream needs a FlowModel (edgeflow.load(...)) or an artifact path, got {type(arg).__name__}")
        if self._threads is not None or self._spin != "auto":
            raise InputError("threads and spin apply when the stream loads the model; pass them to edgeflow.load(...)")
        return arg

    def _open_source(self, arg):
        if hasattr(arg, "read") and hasattr(arg, "close"):
            if self._source_options:
                raise InputError("source_options apply only when the source is given as a URI")
            return arg.open() if hasattr(arg, "open") else arg
        from edgeflow.sources import open_source, parse_uri

        options = dict(self._source_options)
        budget = getattr(self.model, "budget", None)
        if budget is not None and "threads" not in options and parse_uri(arg).kind == "video" \
                and "threads=" not in str(arg):
            options["threads"] = budget.decode_threads  # the budget decides decoding threads too
        return open_source(arg, **options)

    def __enter__(self) -> "Stream":
        self._managed += 1
        return self.start()

    def __exit__(self, exc_type, exc, tb) -> bool:
        self._managed -= 1
        self._note_exception(exc)
        self.close()
        return False

    def _note_exception(self, exc: Optional[BaseException]) -> None:
        """Remember why the caller's code ended the stream (for the report's end reason)."""
        if exc is None or self._stop_reason is not None or self._error is not None:
            return
        if isinstance(exc, KeyboardInterrupt):
            self._stop_reason = ("interrupted", "KeyboardInterrupt")
        elif not isinstance(exc, GeneratorExit):
            self._error = ("error", _one_line(exc))

    def stop(self, reason: str = "stopped", detail: Optional[str] = None) -> None:
        """Ask the stream to end after the frame in progress. Safe from other threads and signal
        handlers; the loop then ends normally and the report is written."""
        if self._stop_reason is None:
            self._stop_reason = (reason, detail)
        self._stop.set()

    # -- capture side: the frame's network tensor ------------------------------------------------
    def _prepare(self, image):
        geometry = self.model.geometry(image)
        shape = (1, 3) + tuple(geometry.net_hw)
        return geometry.to_network(image, out=self._pool.take(shape)), geometry

    # -- inference thread: the model and nothing else --------------------------------------------
    def _infer_loop(self) -> None:
        handoff, delivery, stop = self._handoff, self._delivery, self._stop
        chain_prev, source_gap = None, 0  # the pair's first frame; frames the source skipped since
        try:
            while True:
                notices, item = handoff.get(timeout=0.1)
                for noted, reason in notices:
                    source_gap += int(_frame_of(noted).dropped_before or 0)
                    self._forward_drop(noted, reason)
                if item is None:
                    continue
                if item is END:
                    return
                if stop.is_set():
                    self._forward_drop(item, "stopped")
                    continue
                picked = time.monotonic()
                frame = item.frame
                self._in_flight = item
                stages = {"wait": max(0.0, picked - frame.timestamp - item.preprocess_s),
                          "preprocess": item.preprocess_s}
                raw, chain = self._pairs.step(item.tensor, item.geometry, stages)
                source_gap += int(frame.dropped_before or 0)
                out = _Out(REFERENCE if raw is None else RESULT, frame, raw, chain, stages, item.geometry)
                if raw is not None:
                    out.prev_index, out.gap = chain_prev, frame.index - chain_prev - 1 + source_gap
                chain_prev, source_gap = frame.index, 0
                self._in_flight = None
                if not delivery.put(out, stop):
                    delivery.note(out, "stopped")
        except BaseException as err:  # noqa: BLE001 - handed to the delivery thread, raised there
            self._infer_exc = err
            self._error = self._error or ("error", _one_line(err))
            stop.set()
        finally:
            delivery.close()

    def _forward_drop(self, item, reason: str) -> None:
        if isinstance(item, Prepared):
            self._pool.give(item.tensor)
        self._delivery.put(_Out(DROPPED, _frame_of(item), reason=reason), self._stop)  # light: never waits

    # -- delivery: the caller's thread -----------------------------------------------------------
    def __iter__(self) -> Iterator[Result]:
        if self._iterating or self._state == "closed":
            raise EdgeflowError("a Stream can be iterated once; create a new Stream to run again")
        self.start()
        self._iterating = True
        return self._consume()

    def _consume(self) -> Iterator[Result]:
        try:
            while not (self._stop.is_set() and self._infer_exc is None):
                notices, out = self._delivery.get(timeout=0.1)
                for item, reason in notices:
                    self._hold(_frame_of(item), reason)
                if out is None:
                    continue
                if out is END:
                    self._exhausted = True
                    break
                if out.kind == DROPPED:
                    self._hold(out.frame, out.reason, out.stages)
                    continue
                self._emit_held(below=out.frame.index)
                self._delivering = out
                result = self._deliver(out)
                self._delivering = None
                if result is not None:
                    yield result
            if self._infer_exc is not None:
                raise self._infer_exc
            if self._exhausted and self._capture.end_reason == "capture_error":
                # Not a source reporting a bad file or a lost camera (those end the stream with a
                # reason), but an unexpected failure while reading: the caller must see it.
                raise EdgeflowError(f"reading {getattr(self.source, 'uri', 'the source')} failed: {self._capture.error}")
        except GeneratorExit:
            # The caller left its loop. Inside ``with`` or ``run()`` (which know whether an
            # exception is on its way) they close; a bare ``for ... break`` closes here.
            if not self._managed:
                self.close()
            raise
        except BaseException as err:
            if not self._exhausted or err is self._infer_exc:
                self._note_exception(err)
            self.close()
            raise
        self.close()

    def run(self, callback: Optional[Callable] = None) -> LatencyReport:
        """Run to the end, calling ``callback(result)`` for each result; returns the report."""
        self.start()
        self._managed += 1
        try:
            for result in self:
                if callback is not None:
                    callback(result)
        except BaseException as err:
            self._note_exception(err)
            raise
        finally:
            self._managed -= 1
            self.close()
        return self.report

    def _record(self, frame, status: str, reason=None, stages=None) -> FrameRecord:
        record = FrameRecord(index=frame.index, status=status, reason=reason, capture_ts=frame.timestamp,
                             sensor_ts=frame.sensor_ts, dropped_before=int(frame.dropped_before or 0),
                             stages=dict(stages or {}))
        if record.dropped_before:
            self._recorder.add_drop("source", record.dropped_before)
        return record

    def _deliver(self, out: _Out) -> Optional[Result]:
        frame, stages = out.frame, out.stages
        if out.kind == REFERENCE:
            record = self._record(frame, REFERENCE, out.reason, stages)
            record.result_ts = time.monotonic()
            self._recorder.add_frame(REFERENCE)
            self._emit(record)
            return None
        record = self._record(frame, RESULT, stages=stages)
        t0 = time.perf_counter()
        flow = out.geometry.to_frame(out.raw)
        t1 = time.perf_counter()
        stages["postprocess"] = t1 - t0
        timings = {}
        result = Result(index=frame.index, frame=frame.image, flow=flow, timings=timings, dropped=out.gap,
                        prev_index=out.prev_index, source_frame=frame)
        for sink in self._sinks_open:
            sink.on_result(result)
        stages["sink"] = time.perf_counter() - t1
        done = time.monotonic()
        e2e = done - frame.timestamp
        record.prev_index, record.stages, record.result_ts, record.end_to_end = out.prev_index, stages, done, e2e
        timings.update({k: v * 1e3 for k, v in stages.items()})
        timings["end_to_end"] = e2e * 1e3
        self._recorder.add_frame(RESULT)
        self._recorder.add_result(stages, e2e, done)
        self._emit(record)
        return result

    def _hold(self, frame, reason: str, stages=None) -> None:
        """A drop waits until every earlier frame has its record: records go out in frame order."""
        heapq.heappush(self._pending, (frame.index, next(self._seq), frame, reason, stages))

    def _emit_held(self, below: Optional[int] = None) -> None:
        while self._pending and (below is None or self._pending[0][0] < below):
            _, _, frame, reason, stages = heapq.heappop(self._pending)
            record = self._record(frame, DROPPED, reason, stages)
            self._recorder.add_frame(DROPPED, reason)
            self._emit(record)

    def _emit(self, record: FrameRecord) -> None:
        for sink in self._sinks_open:
            sink.on_record(record)

    # -- shutdown --------------------------------------------------------------------------------
    def close(self) -> Optional[LatencyReport]:
        """End the stream (idempotent): join the threads, account for queued frames, build and
        write the report, close sinks, source and (if the stream loaded it) the model."""
        if self._state == "closed":
            return self.report
        if self._state == "new":
            self._state = "closed"
            return None
        self._state = "closed"
        self._stop.set()
        warnings = self._join_threads()
        problems = []
        try:
            self._account_leftovers()
        except Exception as err:  # a sink failing on a drop record must not stop the shutdown
            problems.append(f"drop records: {_one_line(err)}")
        self.report = self._build_report(warnings)
        for sink in self._sinks_open:
            try:
                sink.close(self.report)
            except Exception as err:
                problems.append(f"{getattr(sink, 'name', type(sink).__name__)}: {_one_line(err)}")
        self._sinks_open = []
        if problems:
            self.report.end["sink_errors"] = problems
        self._release()
        if self.report_path is not None:
            try:
                self.report.write(self.report_path)
            except OSError as err:
                raise EdgeflowError(f"cannot write the report to {self.report_path}: {err.strerror or err}") from None
        return self.report

    def _join_threads(self) -> list:
        warnings = []
        cap = self._capture
        if cap is not None:
            cap.join(JOIN_TIMEOUT_S)
            if cap.is_alive() and self.source is not None:
                self.source.close()  # wakes a read() blocked on a device
                cap.join(JOIN_TIMEOUT_S)
            if cap.is_alive():
                warnings.append("capture thread did not stop within 4 s (source blocked); it was left as a daemon thread")
            if self._handoff is not None:
                self._handoff.close()
        inf = self._infer_thread
        if inf is not None and inf is not threading.current_thread():
            inf.join(INFER_JOIN_TIMEOUT_S)
            if inf.is_alive():
                warnings.append(f"inference did not finish within {INFER_JOIN_TIMEOUT_S:g} s; left as a daemon thread")
        return warnings

    def _account_leftovers(self) -> None:
        """Every frame still somewhere in the pipeline gets its record, all in frame order."""
        if self._recorder is None:
            return
        if self._infer_exc is not None and self._in_flight is not None:
            item, self._in_flight = self._in_flight, None
            reason = "interrupted" if isinstance(self._infer_exc, KeyboardInterrupt) else "error"
            self._hold(_frame_of(item), reason)
        if self._delivering is not None:  # a sink raised (or Ctrl-C hit) while handling this frame
            item, self._delivering = self._delivering, None
            interrupted = (self._stop_reason or ("",))[0] == "interrupted" and self._error is None
            self._hold(item.frame, "interrupted" if interrupted else "error", item.stages)
        for queue in (self._handoff, self._delivery):
            if queue is None:
                continue
            notices, items = queue.drain()
            for item, reason in notices:
                self._hold(_frame_of(item), reason)
            for item in items:
                if isinstance(item, _Out) and item.kind == DROPPED:
                    self._hold(item.frame, item.reason, item.stages)
                else:
                    self._hold(_frame_of(item), "stopped")
        self._emit_held()

    def _end(self) -> dict:
        if self._error is not None:
            reason, detail = self._error
        elif self._stop_reason is not None:
            reason, detail = self._stop_reason
        elif self._exhausted and self._capture is not None:
            reason, detail = self._capture.end_reason or "eof", self._capture.error
            if reason.startswith("corrupt"):
                reason, detail = "corrupt", reason.partition(":")[2].strip() or detail
        else:
            reason, detail = "stopped", "the consumer stopped iterating"
        end = {"reason": reason}
        if detail:
            end["detail"] = detail
        return end

    def _build_report(self, warnings: list) -> LatencyReport:
        from edgeflow import sysinfo

        if self._recorder is None:
            self._recorder = LatencyRecorder()
        rss_end = sysinfo.rss_bytes()
        mb = (lambda b: None if b is None else round(b / 2**20, 2))
        memory = {"rss_start_mb": mb(self._rss_start), "rss_end_mb": mb(rss_end), "source": sysinfo.rss_source()}
        device = {"model": sysinfo.device_model(), "cpu": sysinfo.cpu_model(), "start": self._device_start,
                  "end": sysinfo.snapshot()}
        end = self._end()
        if warnings:
            end["warnings"] = warnings
        if self._capture is not None:
            end["frames_read"] = self._capture.read
        cpu_s = time.process_time() - self._cpu0
        results = self._recorder.results
        meta = {**self._meta(), "cpu_s": round(cpu_s, 6),
                "cpu_s_per_frame": round(cpu_s / results, 6) if results else None}
        return self._recorder.report(end=end, memory=memory, device=device, meta=meta,
                                     duration_s=time.monotonic() - self._t0)

    def _release(self) -> None:
        for sink in self._sinks_open:  # only on a failed start: close() already closed them
            try:
                sink.close(None)
            except Exception:
                pass
        self._sinks_open = []
        if self.source is not None:
            try:
                self.source.close()
            except Exception:
                pass
        if self._owns_model and self.model is not None:
            self.model.close()
            self._owns_model = False

    # -- facts -----------------------------------------------------------------------------------
    @property
    def cached(self) -> bool:
        """True when features are being reused between pairs."""
        return bool(self._pairs and self._pairs.cached)

    def _meta(self) -> dict:
        from edgeflow.sources.uri import redact
        from edgeflow.version import __version__

        model, source = self.model, self.source
        budget = getattr(model, "budget", None)
        return {
            "edgeflow": __version__,
            "started_at": self._started_wall,
            "model": getattr(model, "name", None),
            "artifact": str(getattr(getattr(model, "artifact", None), "root", "")) or None,
            "backend": getattr(model, "backend", None),
            "cached": self.cached,
            # Credentials masked: this goes to the report, the sinks and the metrics/live pages.
            "source": redact(getattr(source, "uri", None) if source is not None else self._source_arg),
            "live": bool(getattr(source, "is_live", False)),
            "source_fps": getattr(source, "fps", None),
            "drop_policy": self.drop_policy,
            "queue_size": self.queue_size,
            "sink_queue_size": self.sink_queue_size,
            "max_frames": self.max_frames,
            "duration_limit_s": self.duration,
            # The thread budget (edgeflow.budget): what inference got and why.
            "threads": getattr(budget, "threads", None),
            "spinning": getattr(budget, "spinning", None),
            "cores_seen": getattr(budget, "cores_seen", None),
            "thread_budget": budget.to_dict() if budget is not None else None,
        }


def _as_sink(obj):
    from edgeflow.sinks.base import Sink
    from edgeflow.sinks.callback import CallbackSink

    if isinstance(obj, Sink) or all(hasattr(obj, m) for m in ("open", "on_result", "on_record", "close")):
        return obj
    if callable(obj):
        return CallbackSink(obj)
    raise InputError(f"a sink must be a Sink or a callable taking a Result, got {type(obj).__name__}")


def _one_line(err: BaseException) -> str:
    text = str(err).strip().splitlines()
    return f"{type(err).__name__}: {text[0]}" if text else type(err).__name__
