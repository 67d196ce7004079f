#!/bin/sh
# Issue 14 architecture comparison: same data, same 400-step budget, 1 torch thread, lowest priority.
# Two candidates at a time (the host has 2 cores shared with other jobs). Calls the trainer
# directly (what `edgeflow train --quiet --threads 1 --config ... --out ...` runs).
cd "$(dirname "$0")/../.."
run() { OMP_NUM_THREADS=1 nice -n 19 .venv/bin/python -c "
import sys
from converters.train.config import load_config
from converters.train.trainer import Trainer
cfg = load_config('converters/train/configs/candidates/$1.toml').with_overrides(threads=1)
sys.exit(Trainer(cfg, 'runs/candidates/$1').run())" > runs/candidates/$1.out 2>&1; }
(run neuflow-lite; run pwc-lite) &
(run rapid-lite; run fastflow-lite) &
wait
