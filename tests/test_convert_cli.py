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
                            (["--prune", "1.5"], "--prune", "(0, 1)")):
        r = _cli("convert", "pwc-lite", "--out", str(tmp_path / "never"), *args)
        assert r.returncode == 2 and "Traceback" not in r.stderr, r.stderr
        assert len(r.stderr.strip().splitlines()) == 1 and flag in r.stderr and fix in r.stderr, r.stderr
    assert not (tmp_path / "never").exists()


def test_every_option_in_the_precision_table_is_checked():
    """ConvertOptions.validate reads PRECISION_OPTIONS: each option, set for a precision that does
    not list it, is refused; set for one that does, accepted."""
    from converters.convert import PRECISION_OPTIONS, ConvertOptions
    from edgeflow.errors import InputError
    from edgeflow.tensorrt_engines import TensorRTOptions

    changed = {"calib": "drive.mp4", "calib_frames": 8, "calib_method": "entropy", "per_channel": False,
               "int8_scheme": "s8s8", "max_epe_increase": "3%", "tensorrt.dla_core": 0}
    assert set(changed) == {n for names in PRECISION_OPTIONS.values() for n in names}
    flags = {"fp32": {}, "fp16": {"fp16": True}, "int8": {"int8": True}}
    for precision, accepted in PRECISION_OPTIONS.items():
        for name, value in changed.items():
            kw = {"tensorrt": TensorRTOptions(dla_core=value)} if name.startswith("tensorrt.") else {name: value}
            opts = ConvertOptions("pwc-lite", **flags[precision], **kw)
            if name in accepted:
                opts.validate()
            else:
                with pytest.raises(InputError, match="applies to"):
                    opts.validate()
