"""``edgeflow demo``: the main job on the bundled model and the bundled sample clip.

Streams ``edgeflow/data/sample.mp4`` (real photos moving with exact, known motion, H.264) through
the bundled pwc-lite artifact with the same pipeline as ``edgeflow run``, then shows what a user
wants to see: the flow video, a picture, per-frame latency, and accuracy against the clip's ground
truth next to OpenCV's DIS on the same decoded frames.
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


class _Accuracy:
    """Callback sink: EPE of each result against the clip's exact ground truth, and DIS on the same pair."""

    def __init__(self, meta: dict):
        from edgeflow.synthetic import SyntheticSequence, TextureBank

        # The clip's ground truth depends only on the scene's geometry, which is the same whatever
        # the texture bank (tests/test_install.py checks it), so the demo asks for procedural textures:
        # no scikit-image photos to load on a device, and no training-data hint on the runtime path.
        self.sequence = SyntheticSequence(meta["height"], meta["width"], seed=meta["seed"], length=meta["length"],
                                          textures=TextureBank("procedural"))
        self.model_epe, self.dis_epe = [], []
        self.panel_result = None
        self.previous = None
        try:
            import cv2

            self.cv2 = cv2
            self.dis = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_ULTRAFAST)
        except ImportError:
            self.cv2 = self.dis = None

    def __call__(self, result) -> None:
        from edgeflow.flow import flow_metrics

        if result.prev_index != result.index - 1:
            self.previous = (result.index, result.frame)
            return  # ground truth exists for consecutive frames only (none are dropped from a file)
        gt, valid = self.sequence.flow(result.prev_index)
        self.model_epe.append(flow_metrics(result.flow, gt, valid)["epe"])
        if self.dis is not None and self.previous is not None and self.previous[0] == result.prev_index:
            gray = [self.cv2.cvtColor(f, self.cv2.COLOR_RGB2GRAY) for f in (self.previous[1], result.frame)]
            self.dis_epe.append(flow_metrics(self.dis.calc(gray[0], gray[1], None), gt, valid)["epe"])
        if result.index == self.sequence.length // 2:
            self.panel_result = (self.previous[1] if self.previous else None, result, gt, valid)
        self.previous = (result.index, result.frame)

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
    import statistics

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
    model_epe = statistics.fmean(accuracy.model_epe) if accuracy.model_epe else float("nan")
    line = f"accuracy vs the clip's exact ground truth: mean EPE {model_epe:.2f} px over {len(accuracy.model_epe)} pairs"
    if accuracy.dis_epe:
        line += f" (OpenCV DIS ultrafast on the same decoded frames: {statistics.fmean(accuracy.dis_epe):.2f} px)"
    print(line)
    panel = accuracy.panel(out / "flow_panel.png")
    print("outputs:")
    for name, what in [("flow.mp4", "each frame next to its colour-wheel flow"), ("frames.jsonl", "one latency record per frame"),
                       ("report.json", "latency summary: percentiles, jitter, drift, drops")]:
        print(f"  {out / name}  {what}")
    if panel:
        print(f"  {panel}  frames, estimate, ground truth and error for frame {meta['length'] // 2}")
    print("next: `edgeflow convert pwc-lite --int8`, `edgeflow bench`, `edgeflow eval --data builtin` (see README.md)")
    return 0
