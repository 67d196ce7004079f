"""``edgeflow demo``: the main job on the bundled model and the bundled sample clip.

Streams ``edgeflow/data/sample.mp4`` (real photos moving with exact, known motion, H.264) through
the bundled default artifact (``edgeflow/data/default``) with the same pipeline as ``edgeflow run``, then shows what a user
wants to see: the flow video, a picture, per-frame latency, and accuracy against the clip's ground
truth next to OpenCV's DIS (ultrafast, fast, medium) on the same decoded frames, each with its time
per pair, so a user sees at once what the learned model buys against the classical yardstick.
"""

from __future__ import annotations

from pathlib import Path

NAME = "demo"
HELP = "stream the bundled sample clip through the bundled model (what `make demo` runs)"

DATA = Path(__file__).resolve().parents[1] / "data"


def add_arguments(p):
    p.add_argument("--out", type=Path, default=Path("out/demo"), help="output folder (default out/demo)")
    p.add_argument("--artifact", type=Path, help="artifact directory (default: the bundled model)")
    p.add_argument("--threads", type=int, help="inference threads (default: onnxruntime's choice)")


#: The classical methods the demo scores beside the model: the yardstick a user will compare with.
DEMO_BASELINES = ("dis-ultrafast", "dis-fast", "dis-medium")


class _Accuracy:
    """Callback sink: EPE of each result against the clip's exact ground truth.

    It keeps the decoded frames of every scored pair, so that :meth:`baselines` can run OpenCV's DIS
    on exactly those frames *after* the stream: run inside the stream, DIS would share the CPU with
    the model and inflate the latency the demo reports.
    """

    def __init__(self, meta: dict):
        from edgeflow.synthetic import SyntheticSequence, TextureBank

        # The clip's ground truth depends only on the scene's geometry, which is the same whatever
        # the texture bank (tests/test_install.py checks it), so the demo asks for procedural textures:
        # no scikit-image photos to load on a device, and no training-data hint on the runtime path.
        self.sequence = SyntheticSequence(meta["height"], meta["width"], seed=meta["seed"], length=meta["length"],
                                          textures=TextureBank("procedural"))
        self.model_epe = {}  # frame t-1 -> the model's EPE on (t-1, t)
        self.pairs = []  # (frame t-1, frame t, index t-1) of every scored pair, for the baselines
        self.panel_result = None
        self.previous = None

    def __call__(self, result) -> None:
        from edgeflow.flow import flow_metrics

        if result.prev_index != result.index - 1:
            self.previous = (result.index, result.frame)
            return  # ground truth exists for consecutive frames only (none are dropped from a file)
        gt, valid = self.sequence.flow(result.prev_index)
        self.model_epe[result.prev_index] = flow_metrics(result.flow, gt, valid)["epe"]
        if self.previous is not None and self.previous[0] == result.prev_index:
            self.pairs.append((self.previous[1], result.frame, result.prev_index))
        if result.index == self.sequence.length // 2:
            self.panel_result = (self.previous[1] if self.previous else None, result, gt, valid)
        self.previous = (result.index, result.frame)

    def compared(self) -> tuple[int, float]:
        """(pairs, the model's mean EPE) over the pairs the baselines also see: the first result has
        no earlier frame delivered to the sink, so it is scored for the model only."""
        import statistics

        scored = [self.model_epe[t] for _, _, t in self.pairs] or list(self.model_epe.values())
        return len(scored), (statistics.fmean(scored) if scored else float("nan"))

    def baselines(self, names=DEMO_BASELINES) -> dict:
        """``{name: (mean EPE, median ms per pair)}`` for OpenCV's DIS presets on the scored pairs
        ({} without OpenCV: the demo then shows the model alone and says why)."""
        import statistics
        import time

        from edgeflow.evaluation.baselines import Baseline
        from edgeflow.errors import EdgeflowError
        from edgeflow.flow import flow_metrics

        try:
            methods = [Baseline(name) for name in names]
        except EdgeflowError:
            return {}
        epe = {m.name: [] for m in methods}
        ms = {m.name: [] for m in methods}
        for frame1, frame2, t in self.pairs:
            gt, valid = self.sequence.flow(t)  # rendered once per pair, shared by every method
            for method in methods:
                start = time.perf_counter()
                flow = method(frame1, frame2)
                ms[method.name].append((time.perf_counter() - start) * 1e3)
                epe[method.name].append(flow_metrics(flow, gt, valid)["epe"])
        return {name: (statistics.fmean(epe[name]), statistics.median(ms[name])) for name in epe if epe[name]}

    def panel(self, path: Path) -> Path | None:
        if self.panel_result is None or self.panel_result[0] is None:
            return None
        import numpy as np

        from edgeflow.datasets.images import write_png
        from edgeflow.flow import error_to_color, flow_to_color, side_by_side
        from edgeflow.flow.metrics import end_point_error

        frame1, result, gt, valid = self.panel_result
        # One colour scale for estimate and ground truth, so the two pictures compare directly.
        scale = float(max(1.0, np.linalg.norm(gt[valid], axis=-1).max())) if valid.any() else None
        images = [frame1, result.frame, flow_to_color(result.flow, max_flow=scale), flow_to_color(gt, max_flow=scale, valid=valid),
                  error_to_color(end_point_error(result.flow, gt), valid=valid)]
        labels = ["FRAME T-1", "FRAME T", "EDGEFLOW", "GROUND TRUTH", "ERROR"]
        return write_png(path, side_by_side(images, labels))


def run(args) -> int:
    import json

    from edgeflow.errors import EdgeflowError
    from edgeflow.sinks.jsonl import JsonlSink
    from edgeflow.sinks.status import StatusLine
    from edgeflow.sinks.video import VideoSink
    from edgeflow.stream import Stream

    clip = DATA / "sample.mp4"
    meta_path = clip.with_suffix(".json")
    if not clip.is_file() or not meta_path.is_file():
        raise EdgeflowError(f"the bundled sample clip is missing ({clip}); reinstall edgeflow")
    meta = json.loads(meta_path.read_text())
    out = args.out
    out.mkdir(parents=True, exist_ok=True)
    accuracy = _Accuracy(meta)
    sinks = [VideoSink(str(out / "flow.mp4")), JsonlSink(str(out / "frames.jsonl")), StatusLine(), accuracy]
    print(f"edgeflow demo: streaming {clip.name} ({meta['length']} frames, {meta['width']}x{meta['height']}) "
          f"through the {'bundled model' if args.artifact is None else args.artifact}")
    stream = Stream(args.artifact, str(clip), sinks=sinks, report=str(out / "report.json"), threads=args.threads)
    report = stream.run()
    print(report.summary())
    print("(the file decodes faster than the model runs, so frames wait in the hand-off queue: 'wait' is that time;\n"
          " on a camera, `edgeflow run --source /dev/video0` keeps only the newest frame and end-to-end shrinks to the rest)")
    pairs, model_epe = accuracy.compared()
    inference = report.stages["inference"].median if "inference" in report.stages else None
    print(f"accuracy vs the clip's exact ground truth ({pairs} pairs; mean EPE, lower is better) "
          "and time per pair on this CPU:")
    model_ms = f"{inference:7.1f} ms (inference median)" if inference else ""
    print(f"  {stream.model.name + ' (edgeflow)':<28}{model_epe:6.2f} px  {model_ms}")
    baselines = accuracy.baselines()
    for name, (epe, ms) in baselines.items():
        print(f"  {'OpenCV DIS ' + name[4:]:<28}{epe:6.2f} px  {ms:7.1f} ms (median, run after the stream)")
    if not baselines:
        print("  (OpenCV is not installed, so DIS is not shown: pip install opencv-python-headless)")
    panel = accuracy.panel(out / "flow_panel.png")
    print("outputs:")
    for name, what in [("flow.mp4", "each frame next to its colour-wheel flow"), ("frames.jsonl", "one latency record per frame"),
                       ("report.json", "latency summary: percentiles, jitter, drift, drops")]:
        print(f"  {out / name}  {what}")
    if panel:
        print(f"  {panel}  frames, estimate, ground truth and error for frame {meta['length'] // 2}")
    print("next: `edgeflow convert default --int8`, `edgeflow bench`, `edgeflow eval --data builtin` (see README.md)")
    return 0
