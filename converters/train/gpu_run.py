"""A time-boxed training session on a GPU with the data rendered on the GPU (issue 14).

    python -m converters.train.gpu_run --config converters/train/configs/default-gpu.toml \\
        --out runs/default-gpu --minutes 8.5

It continues the CPU run's weights (``[model] init_from`` in the config: ``runs/default/state.pt``)
as a fine-tuning stage with larger batches and crops, renders every batch on the device with
:class:`converters.train.gpu_data.GpuSyntheticBatches` (the numpy renderer would starve the GPU),
and stops cleanly after ``--minutes`` of wall time, saving ``state.pt`` / ``model.pt`` / the log
like any run (a second call resumes it exactly). Written and tested on the CPU at a tiny size
(``tests/test_families.py``); not yet run on a GPU.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import sys
import time
from pathlib import Path

log = logging.getLogger("edgeflow.converters.train")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default="converters/train/configs/default-gpu.toml")
    parser.add_argument("--out", type=Path, default=Path("runs/default-gpu"))
    parser.add_argument("--minutes", type=float, default=8.5, help="wall-clock budget of the training loop (default 8.5)")
    parser.add_argument("--device", default=None, help="override [train] device (cuda; cpu for a smoke test)")
    parser.add_argument("--steps", type=int, help="override [train] steps (the schedule's length)")
    parser.add_argument("--batch", type=int, help="override [data] batch_size")
    parser.add_argument("--size", type=int, nargs=2, metavar=("H", "W"), help="override the crop size")
    parser.add_argument("--init-from", help="override [model] init_from ('none' to start fresh)")
    args = parser.parse_args(argv)
    started = time.monotonic()

    from converters.train.config import load_config
    from converters.train.data import Stage
    from converters.train.gpu_data import GpuSyntheticBatches
    from converters.train.trainer import STATE_FILE, Trainer

    config = load_config(args.config).with_overrides(steps=args.steps, device=args.device)
    data = config.data
    if args.batch:
        data = dataclasses.replace(data, batch_size=args.batch)
    if args.size:
        data = dataclasses.replace(data, stages=(Stage(0, tuple(args.size), tuple(args.size)),))
    init_from = config.init_from
    if args.init_from is not None:
        init_from = None if args.init_from == "none" else args.init_from
    resume = (args.out / STATE_FILE).is_file()
    config = dataclasses.replace(config, data=data, init_from=None if resume else init_from)
    trainer = Trainer(config, args.out)
    height, width = data.stages[0].crop
    source = GpuSyntheticBatches(data.batch_size, height, width, trainer.device, seed=data.seed, objects=data.max_objects,
                                 max_motion=data.max_motion or 32.0, large_motion=data.large_motion or 80.0,
                                 small_prob=data.small_prob, large_prob=data.large_prob)
    trainer.batch_source = source.stream
    budget = args.minutes * 60.0 - (time.monotonic() - started)
    code = trainer.run(resume=resume, max_seconds=max(budget, 1.0))
    log.info("gpu session: step %d on %s, %.0f s of training, %.0f s wall; state in %s", trainer.step, trainer.device,
             trainer.elapsed, time.monotonic() - started, args.out)
    return code


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(message)s")  # a script: its messages on stderr
    sys.exit(main())
