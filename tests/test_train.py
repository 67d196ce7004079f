"""Training recipe: loss on hand-made pyramids, exact flip augmentation, fast correlation,
exact resume, config errors and the CLI."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from converters.ops import correlation
from converters.train.config import RunConfig, TrainConfig, load_config
from converters.train.data import DataConfig, Stage, SyntheticBatches, flip_sample
from converters.train.fast_correlation import _CorrelationFunction, use_fast_correlation
from converters.train.loss import downsample_flow, level_weight, masked_epe, multiscale_loss
from converters.train.trainer import Trainer, lr_factor
from converters.zoo import build_model
from edgeflow.cli import main
from edgeflow.errors import EdgeflowError


def constant_flow(u, v, height, width, batch=1):
    flow = torch.zeros(batch, 2, height, width)
    flow[:, 0], flow[:, 1] = u, v
    return flow


# -- loss ----------------------------------------------------------------------------------------


def test_level_weights_keep_pwc_balance():
    # PWC alphas 0.08, 0.02, 0.01, 0.005 on per-pixel sums == these weights on per-level means.
    assert [level_weight(s) for s in (32, 16, 8, 4)] == pytest.approx([0.25, 0.25, 0.5, 1.0])


def test_loss_exact_pyramid_costs_only_the_full_resolution_error():
    gt = constant_flow(8.0, -4.0, 32, 32)
    pyramid = [gt[:, :, ::8, ::8] / 8, gt[:, :, ::4, ::4] / 4]  # 4x4 (stride 8), 8x8 (stride 4)
    full = gt + torch.tensor([3.0, 4.0]).view(1, 2, 1, 1)
    terms = multiscale_loss(full, pyramid, gt)
    assert float(terms.total) == pytest.approx(5.0, abs=1e-4)
    assert float(terms.epe) == pytest.approx(5.0, abs=1e-4)
    assert terms.levels == pytest.approx([0.0, 0.0], abs=1e-4)


def test_loss_level_error_is_counted_in_full_resolution_pixels():
    gt = constant_flow(8.0, -4.0, 32, 32)
    # One pixel of error at stride 8 is 8 full-resolution pixels; at stride 4, 4 pixels.
    pyramid = [gt[:, :, ::8, ::8] / 8 + torch.tensor([1.0, 0.0]).view(1, 2, 1, 1),
               gt[:, :, ::4, ::4] / 4 + torch.tensor([0.0, 1.0]).view(1, 2, 1, 1)]
    terms = multiscale_loss(gt.clone(), pyramid, gt, weights=[0.5, 2.0], full_weight=1.0)
    assert terms.levels == pytest.approx([8.0, 4.0], abs=1e-4)
    assert float(terms.total) == pytest.approx(0.5 * 8 + 2.0 * 4, abs=1e-3)


def test_loss_ignores_invalid_pixels_at_every_level():
    gt = constant_flow(2.0, 2.0, 16, 16)
    valid = torch.ones(1, 16, 16)
    valid[:, :8] = 0  # top half invalid
    full = gt.clone()
    full[:, :, :8] += 100.0  # garbage where invalid
    coarse = gt[:, :, ::4, ::4] / 4
    coarse[:, :, :2] = -50.0
    terms = multiscale_loss(full, [coarse], gt, valid)
    assert float(terms.total) == pytest.approx(0.0, abs=1e-4)


def test_downsample_averages_valid_pixels_only_and_scales_units():
    flow = torch.zeros(1, 2, 2, 2)
    flow[0, 0] = torch.tensor([[4.0, 8.0], [1000.0, 1000.0]])
    valid = torch.tensor([[[1.0, 1.0], [0.0, 0.0]]])
    level, level_valid = downsample_flow(flow, valid, 2)
    assert float(level[0, 0, 0, 0]) == pytest.approx(3.0)  # mean(4, 8) / stride 2
    assert float(level_valid[0, 0, 0]) == 1.0
    _, none_valid = downsample_flow(flow, valid * 0, 2)
    assert float(none_valid.sum()) == 0
    assert float(masked_epe(flow, flow + 1, valid * 0)) == 0.0


# -- data ----------------------------------------------------------------------------------------


def _warp_error(frame1, frame2, flow, valid):
    from edgeflow.synthetic import warp_backward

    warped, inside = warp_backward(frame2.astype(np.float32), flow)
    mask = valid & inside
    return float(np.abs(warped - frame1.astype(np.float32))[mask].mean()), int(mask.sum())


@pytest.mark.parametrize("horizontal,vertical", [(True, False), (False, True), (True, True)])
def test_flip_keeps_ground_truth_exact(horizontal, vertical):
    from edgeflow.synthetic import SyntheticFlowGenerator

    sample = SyntheticFlowGenerator(48, 64, seed=3, max_objects=2, augment=False).sample(1)
    base, _ = _warp_error(*sample)
    flipped = flip_sample(*sample, horizontal, vertical)
    error, count = _warp_error(*flipped)
    assert count > 1000
    assert error == pytest.approx(base, abs=1e-3)  # same residual as unflipped: interpolation only
    assert error < 3.0
    # A flip that forgot to negate the flow would not warp back.
    wrong = flipped[2] * np.array([-1.0 if horizontal else 1.0, -1.0 if vertical else 1.0], np.float32)
    assert _warp_error(flipped[0], flipped[1], wrong, flipped[3])[0] > error + 5


def test_batches_are_deterministic_and_shaped():
    config = DataConfig(batch_size=2, seed=5, max_motion=6.0,
                        stages=(Stage(0, (48, 64), (32, 48)), Stage(1, (48, 64), (32, 32), max_motion=20.0)))
    one, two = SyntheticBatches(config), SyntheticBatches(config)
    a, b = one.batch(0), two.batch(0)
    for x, y in zip(a, b):
        assert torch.equal(x, y)
    assert a.frame1.shape == (2, 3, 32, 48) and a.flow.shape == (2, 2, 32, 48) and a.valid.shape == (2, 32, 48)
    assert a.frame1.dtype == torch.float32 and float(a.frame1.max()) <= 255
    assert one.batch(1).frame1.shape[-2:] == (32, 32)  # curriculum stage 2
    assert one._generator(config.stages[0]).max_motion == 6.0
    assert one._generator(config.stages[1]).max_motion == 20.0
    assert not torch.equal(one.batch(2).flow, a.flow)


# -- fast correlation ----------------------------------------------------------------------------


def test_fast_correlation_matches_reference_values_and_gradients():
    f1 = torch.randn(2, 5, 7, 9, dtype=torch.float64, requires_grad=True)
    f2 = torch.randn(2, 5, 7, 9, dtype=torch.float64, requires_grad=True)
    reference = correlation(f1, f2, 2)
    fast = _CorrelationFunction.apply(f1, f2, 2)
    assert torch.allclose(reference, fast)
    weights = torch.randn_like(reference)
    g_ref = torch.autograd.grad((reference * weights).sum(), (f1, f2))
    g_fast = torch.autograd.grad((fast * weights).sum(), (f1, f2))
    for a, b in zip(g_ref, g_fast):
        assert torch.allclose(a, b)


def test_fast_correlation_swap_keeps_state_dict_and_outputs():
    torch.manual_seed(0)
    model = build_model("pwc-lite").eval()
    f1, f2 = torch.rand(1, 3, 64, 64) * 255, torch.rand(1, 3, 64, 64) * 255
    keys = list(model.state_dict())
    with torch.no_grad():
        before = model(f1, f2)
        assert use_fast_correlation(model) == 4
        after = model(f1, f2)
    assert list(model.state_dict()) == keys
    assert torch.allclose(before, after, atol=1e-4)


# -- trainer -------------------------------------------------------------------------------------


def tiny_config(steps=3, batchnorm=False) -> TrainConfig:
    data = DataConfig(batch_size=2, seed=1, stages=(Stage(0, (64, 96), (64, 64)),), max_motion=6.0, max_objects=2)
    run = RunConfig(steps=steps, checkpoint_every=100, log_every=1, val_every=0, threads=1, workers=0, device="cpu")
    return dataclasses.replace(TrainConfig(), data=data, run=run, batchnorm=batchnorm)


def test_lr_schedule_warms_up_then_decays():
    assert lr_factor(0, 10, 100, 0.1) == pytest.approx(0.1)
    assert lr_factor(9, 10, 100, 0.1) == pytest.approx(1.0)
    assert lr_factor(100, 10, 100, 0.1) == pytest.approx(0.1)
    assert 0.1 < lr_factor(55, 10, 100, 0.1) < 1.0


@pytest.mark.parametrize("batchnorm", [False, True])
def test_three_steps_and_resume_reproduce_the_next_loss(tmp_path, batchnorm):
    config = tiny_config(steps=3, batchnorm=batchnorm)
    torch.manual_seed(0)
    straight = Trainer(config, tmp_path / "straight")
    assert straight.run() == 0
    assert straight.step == 3 and np.isfinite(straight.last_loss)

    torch.manual_seed(0)
    first = Trainer(config, tmp_path / "split")
    first.run(until=2)
    assert first.step == 2 and (tmp_path / "split" / "state.pt").is_file()
    torch.manual_seed(123)  # resume must restore the RNG and weights, not rely on the seed
    resumed = Trainer(config, tmp_path / "split")
    assert resumed.run(resume=True) == 0
    assert resumed.step == 3
    assert resumed.last_loss == pytest.approx(straight.last_loss, rel=1e-5)
    for a, b in zip(straight.model.state_dict().values(), resumed.model.state_dict().values()):
        assert torch.allclose(a, b, atol=1e-6)

    from converters.load import load_model

    loaded = load_model(tmp_path / "split" / "model.pt")
    assert loaded.arch == "pwc" and loaded.config == build_model("pwc-lite").config_dict()
    lines = (tmp_path / "split" / "log.jsonl").read_text().splitlines()
    assert len(lines) == 3 and '"lr"' in lines[0]


def test_resume_without_state_is_an_actionable_error(tmp_path):
    with pytest.raises(EdgeflowError, match="--resume"):
        Trainer(tiny_config(), tmp_path / "empty").run(resume=True)


def test_bundled_config_parses_and_typos_are_refused(tmp_path):
    config = load_config("pwc-lite.toml")
    assert config.model == "pwc-lite" and config.run.steps > 0 and config.data.stages[0].start == 0
    bad = tmp_path / "bad.toml"
    bad.write_text("[optim]\nlearning_rate = 1e-3\n")
    with pytest.raises(EdgeflowError, match="learning_rate"):
        load_config(bad)
    with pytest.raises(EdgeflowError, match="not found"):
        load_config(tmp_path / "missing.toml")


def test_cli_help(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["train", "--help"])
    assert exit_info.value.code == 0
    text = capsys.readouterr().out
    assert "--resume" in text and "--config" in text and "--steps" in text


def test_cli_bad_config_exits_with_one_line(tmp_path, capsys):
    assert main(["train", "--config", str(tmp_path / "nope.toml"), "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("edgeflow train: error:") and "\n" not in err


def test_training_batchnorm_folds_into_the_plain_zoo_model():
    from converters.train.batchnorm import add_batchnorm, fold_batchnorm

    torch.manual_seed(0)
    model = build_model("pwc-lite")
    keys = list(model.state_dict())
    assert add_batchnorm(model) > 20
    model.train()
    with torch.no_grad():  # a few forward passes give the BatchNorms non-trivial running stats
        for _ in range(3):
            model(torch.rand(2, 3, 64, 64) * 255, torch.rand(2, 3, 64, 64) * 255)
    model.eval()
    f1, f2 = torch.rand(1, 3, 64, 96) * 255, torch.rand(1, 3, 64, 96) * 255
    with torch.no_grad():
        before = model(f1, f2)
        fold_batchnorm(model)
        after = model(f1, f2)
    assert list(model.state_dict()) == keys  # same modules and keys as the zoo model
    assert torch.allclose(before, after, atol=1e-3 * (1 + float(before.abs().max())))


def test_init_from_continues_an_earlier_run_and_refuses_a_mismatch(tmp_path):
    first = Trainer(tiny_config(steps=2, batchnorm=True), tmp_path / "stage1")
    assert first.run() == 0
    second_config = dataclasses.replace(tiny_config(steps=1, batchnorm=True), init_from=str(tmp_path / "stage1" / "state.pt"))
    second = Trainer(second_config, tmp_path / "stage2")
    for key, value in first.model.state_dict().items():  # starts exactly where stage 1 ended
        assert torch.equal(second.model.state_dict()[key], value), key
    assert second.step == 0 and second.run() == 0  # fresh schedule and optimizer

    # A folded (deployable) checkpoint lacks the BatchNorm tensors: a clear error, not a silent partial load.
    folded = dataclasses.replace(second_config, init_from=str(tmp_path / "stage1" / "model.pt"))
    with pytest.raises(EdgeflowError, match="does not match this model.*batchnorm"):
        Trainer(folded, tmp_path / "x")
    # ... which is the right input for a run without BatchNorm.
    plain = Trainer(dataclasses.replace(tiny_config(steps=1), init_from=str(tmp_path / "stage1" / "model.pt")),
                    tmp_path / "y")
    assert plain.run() == 0
    with pytest.raises(EdgeflowError, match="not found"):
        Trainer(dataclasses.replace(tiny_config(), init_from=str(tmp_path / "nope.pt")), tmp_path / "z")


def test_sigterm_to_the_process_group_saves_the_state_with_a_render_worker(tmp_path):
    """``timeout`` and Ctrl-C signal the whole process group, render worker included."""
    import os
    import signal
    import subprocess
    import sys
    import time

    config = tmp_path / "c.toml"
    config.write_text(
        '[model]\nname = "pwc-lite"\n[data]\nbatch_size = 2\nmax_motion = 6.0\nmax_objects = 2\n'
        '[[data.stages]]\nstart = 0\nsize = [64, 96]\ncrop = [64, 64]\n'
        '[train]\nsteps = 100000\ncheckpoint_every = 100000\nlog_every = 1\nval_every = 0\nthreads = 1\nworkers = 1\ndevice = "cpu"\n'
    )
    out = tmp_path / "run"
    proc = subprocess.Popen([sys.executable, "-m", "edgeflow", "train", "--config", str(config), "--out", str(out), "--quiet"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and not (out / "log.jsonl").is_file():
            time.sleep(0.2)
        assert (out / "log.jsonl").is_file(), "training did not start"
        os.killpg(proc.pid, signal.SIGTERM)
        stdout, stderr = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode == 130, stderr
    # a log warning (shown with --quiet too), on stderr through the CLI's console handler
    assert "Traceback" not in stderr and "edgeflow: warning: interrupted: state saved" in stderr
    assert (out / "state.pt").is_file()
