"""``edgeflow.Stream``: source -> capture thread -> hand-off -> inference thread -> delivery -> sinks.

::

    with edgeflow.Stream(model, "clip.mp4", sinks=[JsonlSink("frames.jsonl")]) as stream:
        for result in stream:            # Result(index, frame, flow, timings, dropped, ...)
            ...
    print(stream.report.summary())

``Stream`` is the orchestrator: it takes a model (or loads one) and a source (or opens one), and
puts together parts that each hold one idea, so that only the model sits on the inference
thread's critical path:

* :mod:`~edgeflow.stream.setup`: the arguments, checked in one place; the model, source and sinks opened;
* :mod:`~edgeflow.stream.pipeline`: the two threads and their bounded queues, started and joined together:

  * **capture** (:mod:`~edgeflow.stream.capture`): reads the source (decoding, colour conversion),
    checks each frame (the runtime's one frame rule, :func:`edgeflow.preprocess.frame_problem`)
    and writes its network tensor into a reused buffer;
  * **inference** (:mod:`~edgeflow.stream.inference`, ``edgeflow-infer``): consecutive pairs through
    the model's public calls, features cached, nothing else;

* :mod:`~edgeflow.stream.delivery` (the caller's thread, the one iterating): flow back to frame
  pixels, sinks, and the caller's loop body. It is fed by a bounded queue of its own: under
  ``newest`` a slow sink or loop body costs results (``sink_full`` drops, counted), never model
  time; under ``block`` (files) it holds the model back so every frame reaches the sinks;
* :mod:`~edgeflow.stream.records` (``Ledger``): every frame's one record, built in one place;
* :mod:`~edgeflow.stream.report`: the report, built in one place.

Frames are dropped for being late in one place, the hand-off (``queue_full``), and every frame
gets exactly one record, written by the delivery thread in frame order.

Shutdown is one path for every ending (end of source, frame/duration limit, ``stop()``,
Ctrl-C in the loop, an exception in a sink or the model): stop and join the capture and inference
threads, turn whatever is still queued into ``stopped`` drop records (in frame order), build the
report, close the sinks, write the report file, close what the stream opened. The library never
installs signal handlers; the CLI does and calls :meth:`Stream.stop`.
"""

from __future__ import annotations

import threading
import time
from typing import Callable, Iterator, Optional

from edgeflow.errors import EdgeflowError, InputError
from edgeflow.monitoring.latency import LatencyRecorder, LatencyReport
from edgeflow.stream.capture import BufferPool
from edgeflow.stream.delivery import Delivery
from edgeflow.stream.handoff import END
from edgeflow.stream.pipeline import Pipeline
from edgeflow.stream.records import Result
from edgeflow.stream.report import RunReport, end_of_run, error_line, run_facts
from edgeflow.stream.setup import DROP_POLICIES, StreamSettings, as_sink, open_model, open_source

__all__ = ["DROP_POLICIES", "Stream"]


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
        if source_or_uri is None:
            raise InputError("Stream needs a source: a URI such as 'clip.mp4' or 'synthetic://', or a Source object")
        self.settings = s = StreamSettings.checked(
            drop_policy=drop_policy, queue_size=queue_size, sink_queue_size=sink_queue_size,
            cache_features=cache_features, max_frames=max_frames, duration=duration, report=report, backend=backend,
            threads=threads, spin=spin, source_options=source_options, max_samples=max_samples)
        self.queue_size, self.sink_queue_size, self.cache_features = s.queue_size, s.sink_queue_size, s.cache_features
        self.max_frames, self.duration, self.report_path = s.max_frames, s.duration, s.report_path
        self.sinks = [as_sink(sink) for sink in sinks]
        self._model_arg, self._source_arg = model_or_path, source_or_uri

        self.model = None
        self.source = None
        self.drop_policy: Optional[str] = None
        self.report: Optional[LatencyReport] = None
        self._state = "new"  # new -> running -> closed
        self._stop = threading.Event()
        self._stop_reason: Optional[tuple] = None  # (reason, detail): stop(), Ctrl-C
        self._error: Optional[tuple] = None  # (reason, detail): the first failure
        self._exhausted = False
        self._iterating = False
        self._owns_model = False
        self._managed = 0  # open `with` blocks / run() calls: they close the stream, not the generator
        self._pool = BufferPool()
        self._pipeline: Optional[Pipeline] = None
        self._delivery = Delivery(self.sinks, LatencyRecorder(max_samples=s.max_samples))
        self._run = RunReport()

    # -- life cycle ------------------------------------------------------------------------------
    def start(self) -> "Stream":
        """Load/open everything and start capturing (``with`` and iteration call this)."""
        if self._state != "new":
            return self
        self._state = "running"
        self._run.started()
        try:
            self._open()
        except BaseException as err:
            self._error = self._error or ("error", error_line(err))
            self._stop.set()
            if self._pipeline is not None:
                self._pipeline.join()
            self._release()
            self._state = "closed"
            if self.report_path is not None:  # even a stream that never started says why
                try:
                    self.report = self._build_report([])
                    self.report.write(self.report_path)
                except Exception:  # the original error is the one to show
                    pass
            raise
        return self

    def _open(self) -> None:
        s = self.settings
        self.model, self._owns_model = open_model(self._model_arg, s)
        self.source = open_source(self._source_arg, s, self.model)
        self.drop_policy = s.policy_for(self.source)
        self._pipeline = Pipeline(self.model, self.source, policy=self.drop_policy, queue_size=s.queue_size,
                                  sink_queue_size=s.sink_queue_size, cache_features=s.cache_features, pool=self._pool,
                                  stop=self._stop, on_error=self._inference_failed, max_frames=s.max_frames,
                                  deadline=None if s.duration is None else time.monotonic() + s.duration)
        self._delivery.open(self._facts())
        self._run.loaded()  # after loading: RSS growth means the stream itself
        self._pipeline.start()

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
            self._error = ("error", error_line(exc))

    def _inference_failed(self, err: BaseException) -> None:
        self._error = self._error or ("error", error_line(err))

    def stop(self, reason: str = "stopped", detail: Optional[str] = None) -> None:
        """Ask the stream to end after the frame in progress. Safe from other threads and signal
        handlers; the loop then ends normally and the report is written."""
        if self._stop_reason is None:
            self._stop_reason = (reason, detail)
        self._stop.set()

    # -- the caller's thread ---------------------------------------------------------------------
    def __iter__(self) -> Iterator[Result]:
        if self._iterating or self._state == "closed":
            raise EdgeflowError("a Stream can be iterated once; create a new Stream to run again")
        self.start()
        self._iterating = True
        return self._consume()

    def _consume(self) -> Iterator[Result]:
        pipeline = self._pipeline
        try:
            while not (self._stop.is_set() and pipeline.error is None):
                result = self._delivery.receive(pipeline.results)
                if result is END:
                    self._exhausted = True
                    break
                if result is not None:
                    yield result
            if pipeline.error is not None:
                raise pipeline.error
            if self._exhausted and pipeline.capture.end_reason == "capture_error":
                # Not a source reporting a bad file or a lost camera (those end the stream with a
                # reason), but an unexpected failure while reading: the caller must see it.
                raise EdgeflowError(f"reading {getattr(self.source, 'uri', 'the source')} failed: "
                                    f"{pipeline.capture.error}")
        except GeneratorExit:
            # The caller left its loop. Inside ``with`` or ``run()`` (which know whether an
            # exception is on its way) they close; a bare ``for ... break`` closes here.
            if not self._managed:
                self.close()
            raise
        except BaseException as err:
            if not self._exhausted or err is pipeline.error:
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

    # -- shutdown: one path for every ending ------------------------------------------------------
    def close(self) -> Optional[LatencyReport]:
        """End the stream (idempotent): join the threads, account for queued frames, build and
        write the report, close sinks, source and (if the stream loaded it) the model."""
        if self._state != "running":
            self._state = "closed"
            return self.report
        self._state = "closed"
        self._stop.set()
        warnings = self._pipeline.join()
        problems = []
        try:
            self._account_leftovers()
        except Exception as err:  # a sink failing on a drop record must not stop the shutdown
            problems.append(f"drop records: {error_line(err)}")
        self.report = self._build_report(warnings)
        problems += self._delivery.close(self.report)
        if problems:
            self.report.end["sink_errors"] = problems
        self._release()
        if self.report_path is not None:
            try:
                self.report.write(self.report_path)
            except OSError as err:
                raise EdgeflowError(f"cannot write the report to {self.report_path}: {err.strerror or err}") from None
        return self.report

    def _account_leftovers(self) -> None:
        """Every frame still somewhere in the pipeline gets its record, all in frame order."""
        interrupted = (self._stop_reason or ("",))[0] == "interrupted" and self._error is None
        self._delivery.abandon_current("interrupted" if interrupted else "error")
        self._pipeline.leftovers(self._delivery.ledger)
        self._delivery.ledger.flush()

    def _build_report(self, warnings: list) -> LatencyReport:
        capture = self._pipeline.capture if self._pipeline is not None else None
        end = end_of_run(self._error, self._stop_reason, self._exhausted, capture)
        return self._run.build(self._delivery.ledger.recorder, end=end, facts=self._facts(), warnings=warnings,
                               frames_read=None if capture is None else capture.read)

    def _release(self) -> None:
        """Close what the stream opened (sinks still open after a failed start, the source, a
        model it loaded), quietly: the error that brought us here is the one to show."""
        for closing in (lambda: self._delivery.close(None), getattr(self.source, "close", None)):
            try:
                if closing is not None:
                    closing()
            except Exception:
                pass
        if self._owns_model and self.model is not None:
            self.model.close()
            self._owns_model = False

    # -- facts -----------------------------------------------------------------------------------
    @property
    def cached(self) -> bool:
        """True when features are being reused between pairs."""
        return bool(self._pipeline and self._pipeline.pairs.cached)

    def _facts(self) -> dict:
        return run_facts(model=self.model, source=self.source, source_arg=self._source_arg,
                         started_at=self._run.started_at, cached=self.cached, drop_policy=self.drop_policy,
                         queue_size=self.queue_size, sink_queue_size=self.sink_queue_size,
                         max_frames=self.max_frames, duration=self.duration)
