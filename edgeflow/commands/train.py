"""``edgeflow train``: train a zoo model on synthetic data from a TOML recipe (host side, needs torch)."""

from __future__ import annotations

from pathlib import Path

NAME = "train"
HELP = "train a zoo model on on-the-fly synthetic flow data from a TOML recipe (PyTorch, CPU or CUDA)"
DESCRIPTION = """\
Train a zoo model (default recipe: pwc-lite.toml) on FlyingChairs-style pairs rendered on
the fly from photographs that ship with scikit-image; nothing is stored on disk.

The recipe (a TOML file) sets the model, data curriculum, AdamW + warm-up/cosine schedule,
gradient clipping, checkpoint and validation intervals, and optionally ([model] init_from) the
weights of an earlier run to fine-tune from, with a fresh schedule (a second training stage).
Progress shows loss and validation EPE
(held-out synthetic pairs, plus the built-in evaluation set). Ctrl-C (or SIGTERM) saves the state;
--resume continues exactly where it stopped.

Outputs in --out: state.pt (resume state), model.pt (edgeflow checkpoint for `edgeflow convert`),
model_step<N>.pt snapshots, log.jsonl (step, loss, epe, lr, grad_norm, time, val_epe).

examples:
  edgeflow train --config pwc-lite.toml --out out/train/pwc-lite
  edgeflow train --config pwc-lite.toml --out out/train/pwc-lite --resume
  edgeflow train --config pwc-lite-finetune.toml --out out/train/pwc-lite-ft   # stage 2
  edgeflow train --config my.toml --steps 200 --device cuda
"""


def add_arguments(p):
    p.add_argument("--config", default="pwc-lite.toml",
                   help="TOML recipe; a bare name is looked up in converters/train/configs (default pwc-lite.toml)")
    p.add_argument("--out", type=Path, help="output directory (default out/train/<model>)")
    p.add_argument("--resume", action="store_true", help="continue from <out>/state.pt")
    p.add_argument("--steps", type=int, help="total steps (overrides [train] steps; the schedule follows it)")
    p.add_argument("--device", choices=["auto", "cpu", "cuda"], help="default: [train] device (auto: CUDA when available)")
    p.add_argument("--threads", type=int, help="torch CPU threads (overrides [train] threads)")
    p.add_argument("--quiet", action="store_true", help="warnings and errors only: no progress bar")


def run(args) -> int:
    from converters.train.config import load_config
    from converters.train.trainer import Trainer
    from edgeflow.errors import InputError

    if args.steps is not None and args.steps < 1:
        raise InputError(f"--steps must be >= 1, got {args.steps}")
    config = load_config(args.config).with_overrides(steps=args.steps, device=args.device, threads=args.threads)
    out = args.out or Path("out") / "train" / config.model
    trainer = Trainer(config, out)
    code = trainer.run(resume=args.resume)
    if code == 0:
        print(f"done: step {trainer.step}, checkpoint {out / 'model.pt'}")
    return code
