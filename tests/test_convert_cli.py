"""`edgeflow convert` end to end through the CLI: exit codes, one-line errors, parity failure."""

import json
import subprocess
import sys

import pytest

from edgeflow.artifact import Artifact
from edgeflow.errors import ArtifactError


def _cli(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "edgeflow", *args], capture_output=True, text=True, cwd=cwd, timeout=600)


def test_missing_model_file_is_one_line_error(tmp_path):
    r = _cli("convert", str(tmp_path / "nope.pt"), "--out", str(tmp_path / "a"), "--quiet")
    assert r.returncode == 2
    assert "Traceback" not in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1, r.stderr


def test_untrusted_pickle_refused_by_cli(tmp_path):
    torch = pytest.importorskip("torch")
    path = tmp_path / "whole.pt"
    torch.save(torch.nn.Conv2d(1, 1, 1), path)
    r = _cli("convert", str(path), "--out", str(tmp_path / "a"), "--quiet")
    assert r.returncode == 2 and "--trust-pickle" in r.stderr and "Traceback" not in r.stderr


def test_parity_failure_exits_nonzero_and_marks_invalid(tmp_path):
    out = tmp_path / "art"
    # A negative tolerance can never be met: exercises the failure path with a real export.
    r = _cli("convert", "pwc-lite", "--out", str(out), "--height", "64", "--width", "64", "--parity-pairs", "1",
             "--parity-epe", "-1", "--no-split", "--quiet")
    assert r.returncode == 2 and "parity check failed" in r.stderr and "Traceback" not in r.stderr
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["valid"] is False and "parity" in manifest["invalid_reason"]
    with pytest.raises(ArtifactError, match="not validated"):
        Artifact.open(out)


def test_help_texts():
    r = _cli("convert", "--help")
    assert r.returncode == 0 and "--trust-pickle" in r.stdout and "zoo name" in r.stdout
    r = _cli("--help")
    assert r.returncode == 0 and "convert" in r.stdout


def test_options_a_precision_does_not_take_are_one_line_errors_before_any_work(tmp_path):
    for args, flag, fix in ((["--calib", str(tmp_path / "drive.mp4")], "--calib", "--int8"),
                            (["--fp16", "--per-tensor"], "--per-tensor", "--int8"),
                            (["--prune", "1.5"], "--prune", "(0, 1)"),
                            (["--finetune-steps", "100"], "--finetune-steps", "--prune"),
                            (["--mean", "a,b,c"], "--mean", "three comma-separated"),
                            (["--std", "58.4,57.1"], "--std", "three comma-separated")):
        r = _cli("convert", "pwc-lite", "--out", str(tmp_path / "never"), *args)
        assert r.returncode == 2 and "Traceback" not in r.stderr, r.stderr
        assert len(r.stderr.strip().splitlines()) == 1 and flag in r.stderr and fix in r.stderr, r.stderr
    assert not (tmp_path / "never").exists()


def test_every_option_in_the_precision_table_is_checked():
    """ConvertOptions.validate reads PRECISION_OPTIONS: each option, set for a precision that does
    not list it, is refused; set for one that does, accepted."""
    from converters.convert import FLAGS, PRECISION_OPTIONS, ConvertOptions
    from converters.quantize.pipeline import QuantizeRequest
    from edgeflow.errors import InputError
    from edgeflow.tensorrt_engines import TensorRTOptions

    changed = {"quantize.calib": "drive.mp4", "quantize.calib_frames": 8, "quantize.calib_method": "entropy",
               "quantize.per_channel": False, "quantize.int8_scheme": "s8s8", "quantize.max_epe_increase": "3%",
               "tensorrt.dla_core": 0}
    assert set(changed) == {n for names in PRECISION_OPTIONS.values() for n in names}
    flags = {"fp32": {}, "fp16": {"fp16": True}, "int8": {"int8": True}}
    for precision, accepted in PRECISION_OPTIONS.items():
        for name, value in changed.items():
            group, field = name.split(".")
            quantize = QuantizeRequest(**flags[precision], **({field: value} if group == "quantize" else {}))
            engine = TensorRTOptions(dla_core=value) if group == "tensorrt" else None
            opts = ConvertOptions("pwc-lite", quantize=quantize, tensorrt=engine)
            if name in accepted:
                opts.validate()
            else:
                with pytest.raises(InputError, match=f"^{FLAGS[name]} applies to"):
                    opts.validate()


def test_out_of_range_and_unknown_values_name_the_flag_from_python_too():
    """The checks live in ConvertOptions.validate, not in argparse: a Python caller gets the same
    one-line errors, each naming the CLI flag of the field it got wrong."""
    from converters.byo import InputOptions
    from converters.convert import CHOICES, FLAGS, PRECISION_OPTIONS, RANGES, CheckOptions, ConvertOptions, ExportOptions, PruneOptions
    from converters.quantize.pipeline import QuantizeRequest
    from edgeflow.errors import InputError

    checked = set(CHOICES) | set(RANGES) | {n for names in PRECISION_OPTIONS.values() for n in names}
    assert checked <= set(FLAGS), f"no CLI flag named for {checked - set(FLAGS)}"

    for kwargs, flag in ((dict(export=ExportOptions(height=8)), "--height"),
                         (dict(export=ExportOptions(pad_multiple=0)), "--pad-multiple"),
                         (dict(export=ExportOptions(exporter="fx")), "--exporter"),
                         (dict(quantize=QuantizeRequest(int8=True, calib_frames=0)), "--calib-frames"),
                         (dict(quantize=QuantizeRequest(int8=True, calib_method="mse")), "--calib-method"),
                         (dict(quantize=QuantizeRequest(fp16=True, max_epe_increase="lots")), "--max-epe-increase"),
                         (dict(prune=PruneOptions(ratio=1.0)), "--prune"),
                         (dict(prune=PruneOptions(finetune_steps=100)), "--finetune-steps"),
                         (dict(check=CheckOptions(latency_iterations=0)), "--latency-iterations"),
                         (dict(check=CheckOptions(latency_threads=0)), "--threads"),
                         (dict(inputs=InputOptions(color_order="GRB")), "--color-order"),
                         (dict(inputs=InputOptions(std=(1.0, 0.0, 1.0))), "--std"),
                         (dict(inputs=InputOptions(mean=(1.0, 2.0))), "--mean")):
        with pytest.raises(InputError) as info:
            ConvertOptions("pwc-lite", **kwargs).validate()
        assert str(info.value).startswith(flag) and "\n" not in str(info.value), (flag, str(info.value))
    ConvertOptions("pwc-lite", prune=PruneOptions(ratio=0.5, finetune_steps=100)).validate()


def test_the_cli_builds_every_option_group_from_its_flags():
    """edgeflow.commands.convert.options_from_args: each flag lands in its group's field."""
    from edgeflow.cli import build_parser
    from edgeflow.commands.convert import options_from_args

    args = build_parser().parse_args(
        ["convert", "pwc-lite", "--out", "o", "--height", "48", "--width", "64", "--opset", "18", "--no-split",
         "--pad-multiple", "16", "--int8", "--fp16", "--calib", "c.mp4", "--calib-frames", "4", "--calib-method", "entropy",
         "--per-tensor", "--int8-scheme", "s8s8", "--max-epe-increase", "1%", "--prune", "0.25", "--parity-pairs", "2",
         "--parity-epe", "0.5", "--latency-iterations", "3", "--threads", "2", "--no-profile", "--no-recognize",
         "--correlation", "m.c:max_displacement=4", "--input-layout", "stacked", "--input-range", "0-1",
         "--color-order", "BGR", "--mean", "1,2,3", "--std", "4,5,6", "--target", "tensorrt", "--dla", "1",
         "--workspace", "2"])
    o = options_from_args(args).validate()
    assert (o.export.height, o.export.width, o.export.opset, o.export.split, o.export.pad_multiple) == (48, 64, 18, False, 16)
    q = o.quantize
    assert (q.int8, q.fp16, q.calib, q.calib_frames, q.calib_method, q.per_channel, q.int8_scheme, q.max_epe_increase) == \
        (True, True, "c.mp4", 4, "entropy", False, "s8s8", "1%")
    assert o.precision == "int8" and (o.prune.ratio, o.prune.finetune_steps) == (0.25, 6000)
    assert (o.check.parity_pairs, o.check.tol_epe, o.check.latency_iterations, o.check.latency_threads, o.check.profile_ops) == \
        (2, 0.5, 3, 2, False)
    assert (o.recognize.enabled, o.recognize.correlations) == (False, ["m.c:max_displacement=4"])
    assert (o.inputs.layout, o.inputs.input_range, o.inputs.color_order, o.inputs.mean, o.inputs.std) == \
        ("stacked", "0-1", "BGR", (1.0, 2.0, 3.0), (4.0, 5.0, 6.0))
    t = o.tensorrt
    assert (t.precision, t.fp16_fallback, t.dla_core, t.workspace_gb, t.split) == ("int8", True, 1, 2.0, False)
