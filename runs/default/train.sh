#!/bin/sh
# The long run of the edge default (issue 14). Lowest CPU priority, one torch thread, so that the
# host's other jobs keep a core; resumes exactly from state.pt when it exists (a batch is a pure
# function of (seed, step); model, optimizer, schedule and RNG are in state.pt). Stop it with
# `kill <pid>` (SIGTERM): it finishes the step and saves the state. Calls the trainer directly;
# this is what `edgeflow train --config converters/train/configs/default.toml --out runs/default
# --threads 1 --quiet [--resume]` runs.
cd "$(dirname "$0")/../.."
RESUME=False
[ -f runs/default/state.pt ] && RESUME=True
OMP_NUM_THREADS=1 MALLOC_TRIM_THRESHOLD_=1000000000 MALLOC_MMAP_THRESHOLD_=1000000000 exec nice -n 19 .venv/bin/python -c "
import sys
from converters.train.config import load_config
from converters.train.trainer import Trainer
cfg = load_config('converters/train/configs/default.toml').with_overrides(threads=1)
sys.exit(Trainer(cfg, 'runs/default').run(resume=$RESUME))"
