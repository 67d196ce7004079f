"""The training loop: AdamW, warm-up + cosine schedule, gradient clipping, exact resume.

Output directory layout (``--out``):

* ``state.pt``      everything needed to continue exactly: model, optimizer, scheduler, step,
                    torch RNG states, elapsed seconds, the config text. Written atomically every
                    ``checkpoint_every`` steps, at the end, and on Ctrl-C.
* ``model.pt``      the latest weights as an edgeflow checkpoint (:func:`converters.load.save_checkpoint`),
                    what ``edgeflow convert`` and ``get_model`` read; ``model_step<N>.pt`` at each
                    validation step, to compare snapshots later.
* ``log.jsonl``     one JSON record per ``log_every`` steps (step, loss, epe, lr, grad_norm,
                    seconds) and per validation (val_epe, builtin_epe).

Why resume is exact: a batch is a pure function of (seed, step) (:mod:`converters.train.data`),
so restoring the step restores the data; the rest is in ``state.pt``. On CPU with the same
thread count the continued run reproduces the uninterrupted one bit for bit
(``tests/test_train.py`` checks the next loss).
"""

from __future__ import annotations

import copy
import json
import logging
import math
import os
import signal
import tempfile
import threading
import time
from pathlib import Path
from typing import Optional

import numpy as np
import torch

from converters.load import save_checkpoint
from converters.train.batchnorm import add_batchnorm, fold_batchnorm
from converters.train.config import TrainConfig
from converters.train.data import batch_stream
from converters.train.fast_correlation import use_fast_correlation
from converters.train.loss import masked_epe, multiscale_loss
from converters.zoo import build_model
from edgeflow.errors import EdgeflowError, first_line

STATE_FILE = "state.pt"
MODEL_FILE = "model.pt"
LOG_FILE = "log.jsonl"
log = logging.getLogger("edgeflow.converters.train")
_VAL_SEED_OFFSET = 1_000_003  # held-out pairs come from a seed training never uses


def pick_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise EdgeflowError("--device cuda: no CUDA device is visible to PyTorch; use --device cpu")
    if name not in ("cpu", "cuda"):
        raise EdgeflowError(f"unknown device {name!r}; use auto, cpu or cuda")
    return torch.device(name)


def lr_factor(step: int, warmup: int, total: int, min_ratio: float) -> float:
    """Linear warm-up to 1 over ``warmup`` steps, then cosine down to ``min_ratio`` at ``total``."""
    if step < warmup:
        return (step + 1) / warmup
    progress = min(1.0, (step - warmup) / max(1, total - warmup))
    return min_ratio + (1 - min_ratio) * 0.5 * (1 + math.cos(math.pi * progress))


def kaiming_init(model: torch.nn.Module) -> None:
    """He-normal conv weights and zero biases, as PWC-Net, and flow heads that start at zero.

    Why: PyTorch's default init shrinks activations by ~2.5x per ReLU layer, so after the encoder
    the features (std ~0.01) give an all-but-zero cost volume and training stalls. Zero flow heads
    make the first prediction "no motion" instead of noise, so the first updates are not spent
    shrinking the features to silence that noise."""
    for module in model.modules():
        if isinstance(module, (torch.nn.Conv2d, torch.nn.ConvTranspose2d)):
            torch.nn.init.kaiming_normal_(module.weight, nonlinearity="relu")
            if module.bias is not None:
                torch.nn.init.zeros_(module.bias)
    heads = [m.predict for m in model.modules() if hasattr(m, "predict")]
    context = getattr(getattr(model, "decoder", None), "context", None)
    if context is not None:
        heads.append(context.layers[-1])
    for head in heads:
        torch.nn.init.zeros_(head.weight)
        torch.nn.init.zeros_(head.bias)


def _read_saved(path: Path, missing: str, context: str) -> dict:
    """``torch.load`` of a file we wrote (tensors and plain containers only), with one-line errors."""
    if not path.is_file():
        raise EdgeflowError(missing)
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:
        raise EdgeflowError(f"{context}cannot read {path}: {first_line(err)}") from None


def load_initial_weights(model: torch.nn.Module, path) -> None:
    """Copy weights from an earlier run's ``state.pt`` or an edgeflow checkpoint into ``model``.

    A training state holds the network as trained (with its training-only BatchNorm, if any); a
    checkpoint holds the deployable network (BatchNorm folded). Either must match ``model``
    exactly: a fine-tuning stage continues the same network, so a missing or extra tensor is an
    error, not something to paper over.
    """
    path = Path(path)
    saved = _read_saved(path, f"[model] init_from: {path} not found; train the first stage first (or fix the path)",
                        "[model] init_from: ")
    weights = saved.get("model", saved.get("state_dict")) if isinstance(saved, dict) else None
    if not isinstance(weights, dict):
        raise EdgeflowError(f"[model] init_from: {path} is neither a training state.pt nor an edgeflow checkpoint")
    ours = model.state_dict()
    missing = sorted(set(ours) - set(weights))
    extra = sorted(set(weights) - set(ours))
    if missing or extra:
        hint = " (BatchNorm tensors differ: use the earlier run's state.pt with the same [model] batchnorm)" if any(
            "bn" in k or "running_" in k for k in missing + extra) else ""
        raise EdgeflowError(f"[model] init_from: {path} does not match this model: "
                            f"{len(missing)} missing, {len(extra)} unexpected tensors, e.g. {(missing + extra)[0]}{hint}")
    bad = [k for k in ours if tuple(ours[k].shape) != tuple(weights[k].shape)]
    if bad:
        raise EdgeflowError(f"[model] init_from: {path} has other shapes, e.g. {bad[0]}: "
                            f"{tuple(weights[bad[0]].shape)} vs {tuple(ours[bad[0]].shape)}")
    model.load_state_dict(weights)


class Validator:
    """Mean EPE on fixed pairs: held-out synthetic ones, and the built-in eval set when it exists."""

    def __init__(self, config: TrainConfig, device: torch.device):
        self.device = device
        self.synthetic = self._synthetic(config)
        self.builtin = self._builtin() if config.run.builtin_eval else []
        self.unseen = self._unseen() if config.run.unseen_eval else []

    @staticmethod
    def _synthetic(config: TrainConfig):
        from edgeflow.synthetic.generator import SyntheticFlowGenerator

        height, width = config.run.val_size
        gen = SyntheticFlowGenerator(
            height, width, seed=config.data.seed + _VAL_SEED_OFFSET, max_motion=config.data.max_motion,
            **config.data.generator_options(),
        )
        return [tuple(gen.sample(i)) for i in range(config.run.val_pairs)]

    @staticmethod
    def _builtin():
        try:
            from edgeflow.synthetic import builtin_eval_set

            return [(p[1], p[2], p[3], p[4]) for p in builtin_eval_set()]
        except Exception:  # not installed / not available: validation just skips it
            return []

    @staticmethod
    def _unseen():
        from edgeflow.synthetic.unseen_eval import unseen_eval_set

        return [(p[1], p[2], p[3], p[4]) for p in unseen_eval_set()]

    @torch.no_grad()
    def _mean_epe(self, model, pairs) -> Optional[float]:
        if not pairs:
            return None
        values = []
        for frame1, frame2, flow, valid in pairs:
            f1 = torch.from_numpy(np.ascontiguousarray(frame1.transpose(2, 0, 1), np.float32))[None].to(self.device)
            f2 = torch.from_numpy(np.ascontiguousarray(frame2.transpose(2, 0, 1), np.float32))[None].to(self.device)
            gt = torch.from_numpy(np.ascontiguousarray(flow.transpose(2, 0, 1), np.float32))[None].to(self.device)
            mask = torch.from_numpy(np.asarray(valid, np.float32))[None].to(self.device)
            values.append(float(masked_epe(model.forward_any_size(f1, f2), gt, mask)))
        return float(np.mean(values))

    def __call__(self, model) -> dict:
        was_training = model.training
        model.eval()
        try:
            result = {"val_epe": self._mean_epe(model, self.synthetic)}
            if self.builtin:
                result["builtin_epe"] = self._mean_epe(model, self.builtin)
            if self.unseen:
                result["unseen_epe"] = self._mean_epe(model, self.unseen)
        finally:
            model.train(was_training)
        return result


class Trainer:
    """``Trainer(config, out_dir).run(resume=...)``; see the module docstring for the outputs."""

    def __init__(self, config: TrainConfig, out_dir):
        # No progress switch: the bar shows where the log records reach a terminal (edgeflow.console).
        self.config = config
        self.out = Path(out_dir)
        self.device = pick_device(config.run.device)
        if self.device.type == "cpu":
            torch.set_num_threads(max(1, config.run.threads))
        self.model = build_model(config.model)
        if config.init == "kaiming":
            kaiming_init(self.model)
        if config.batchnorm:
            add_batchnorm(self.model)
        if config.init_from:
            load_initial_weights(self.model, config.init_from)
        self.model.to(self.device)
        if config.run.fast_correlation:
            use_fast_correlation(self.model)
        o = config.optim
        self.optimizer = torch.optim.AdamW(
            self.model.parameters(), lr=o.lr, betas=tuple(o.betas), weight_decay=o.weight_decay
        )
        total = config.run.steps
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(
            self.optimizer, lambda step: lr_factor(step, o.warmup_steps, total, o.min_lr_ratio)
        )
        self.step = 0
        self.elapsed = 0.0
        self.last_loss: Optional[float] = None
        #: ``start_step -> iterator of Batch``; None: the numpy renderer (:func:`batch_stream`).
        #: The GPU session (:mod:`converters.train.gpu_run`) renders on the device instead.
        self.batch_source = None

    # -- state -------------------------------------------------------------------------------
    def state(self) -> dict:
        state = {
            "step": self.step,
            "elapsed": self.elapsed,
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "torch_rng": torch.get_rng_state(),
            "config_text": self.config.source,
        }
        if torch.cuda.is_available():
            state["cuda_rng"] = torch.cuda.get_rng_state_all()
        return state

    def save(self) -> None:
        self.out.mkdir(parents=True, exist_ok=True)
        handle, tmp = tempfile.mkstemp(dir=self.out, prefix=".state.", suffix=".tmp")
        os.close(handle)
        try:
            torch.save(self.state(), tmp)
            os.replace(tmp, self.out / STATE_FILE)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
        self.save_model(self.out / MODEL_FILE)

    def deployable_model(self) -> torch.nn.Module:
        """The model as shipped: training-only BatchNorm folded away (the plain zoo modules)."""
        if not self.config.batchnorm:
            return self.model
        model = copy.deepcopy(self.model).eval()
        fold_batchnorm(model)
        return model

    def save_model(self, path) -> None:
        save_checkpoint(self.deployable_model(), path, arch=self.config.model,
                        extra={"step": self.step, "elapsed_s": self.elapsed})

    def load(self) -> None:
        path = self.out / STATE_FILE
        state = _read_saved(path, f"--resume: no {STATE_FILE} in {self.out}; start without --resume or pass the right --out", "")
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        torch.set_rng_state(state["torch_rng"])
        if "cuda_rng" in state and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(state["cuda_rng"])
        self.step = int(state["step"])
        self.elapsed = float(state["elapsed"])

    def log(self, record: dict) -> None:
        self.out.mkdir(parents=True, exist_ok=True)
        with open(self.out / LOG_FILE, "a") as handle:
            handle.write(json.dumps(record) + "\n")

    # -- loop --------------------------------------------------------------------------------
    def train_step(self, batch) -> tuple[float, float, float]:
        frame1, frame2, flow, valid = (t.to(self.device, non_blocking=True) for t in batch)
        full, pyramid = self.model(frame1, frame2, return_pyramid=True)
        terms = multiscale_loss(full, pyramid, flow, valid)
        self.optimizer.zero_grad(set_to_none=True)
        terms.total.backward()
        norm = torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.config.optim.grad_clip)
        self.optimizer.step()
        self.scheduler.step()
        return float(terms.total.detach()), float(terms.epe), float(norm)

    def run(self, resume: bool = False, until: Optional[int] = None, max_seconds: Optional[float] = None) -> int:
        """Train to ``config.run.steps`` (or stop early after step ``until``, or once ``max_seconds``
        of wall time have passed, saving the state as a checkpoint, which a later
        ``run(resume=True)`` continues); returns 0, or 130 after Ctrl-C."""
        from edgeflow.console import progress_bar

        if resume:
            self.load()
        run = self.config.run
        self.model.train()
        validator = Validator(self.config, self.device) if run.val_every > 0 else None
        stream = self.batch_source(self.step) if self.batch_source is not None else \
            batch_stream(self.config.data, start=self.step, workers=run.workers)
        deadline = None if max_seconds is None else time.monotonic() + max_seconds
        bar = progress_bar(total=run.steps, initial=self.step, desc=f"train {self.config.model}", logger=log, mininterval=1.0)
        postfix: dict = {}
        sums = np.zeros(3)
        count = 0
        stop = _StopRequest()
        tick = time.perf_counter()
        try:
            last = run.steps if until is None else min(until, run.steps)
            while self.step < last and not stop.requested and (deadline is None or time.monotonic() < deadline):
                loss, epe, norm = self.train_step(next(stream))
                self.step += 1
                now = time.perf_counter()
                self.elapsed += now - tick
                tick = now
                self.last_loss = loss
                sums += (loss, epe, norm)
                count += 1
                if self.step % run.log_every == 0 or self.step == run.steps:
                    mean = sums / count
                    self.log({"step": self.step, "loss": mean[0], "epe": mean[1], "grad_norm": mean[2],
                              "lr": self.scheduler.get_last_lr()[0], "time": round(self.elapsed, 2)})
                    postfix.update(loss=f"{mean[0]:.3f}", epe=f"{mean[1]:.2f}")
                    sums[:] = 0
                    count = 0
                if validator is not None and (self.step % run.val_every == 0 or self.step == run.steps):
                    result = validator(self.model)
                    self.log({"step": self.step, **result, "time": round(self.elapsed, 2)})
                    postfix.update({k: f"{v:.3f}" for k, v in result.items() if v is not None})
                    self.save_model(self.out / f"model_step{self.step}.pt")
                    tick = time.perf_counter()  # validation time is not training time
                if self.step % run.checkpoint_every == 0 or self.step == run.steps:
                    self.save()
                    tick = time.perf_counter()
                bar.set_postfix(postfix, refresh=False)
                bar.update(1)
        finally:
            stop.restore()
            bar.close()
        if stop.requested:
            self.save()
            log.warning("interrupted: state saved at step %d in %s; continue with --resume", self.step, self.out)
            return 130
        if self.step < run.steps:
            self.save()
        return 0


class _StopRequest:
    """Ctrl-C / SIGTERM set a flag that the loop checks between steps, so the saved state is never
    half an optimizer step; a second Ctrl-C aborts at once."""

    def __init__(self):
        self.requested = False
        self._previous = {}
        if threading.current_thread() is threading.main_thread():  # handlers only work there
            self._previous = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
            for sig in self._previous:
                signal.signal(sig, self._handle)

    def _handle(self, signum, frame):
        if self.requested and signum == signal.SIGINT:
            raise KeyboardInterrupt
        self.requested = True

    def restore(self):
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
