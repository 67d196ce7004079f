# Two entry points on a fresh clone: `make demo` and `make test`. Both bootstrap .venv idempotently.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
export OMP_NUM_THREADS ?= 2

.PHONY: demo test venv clean

venv: $(STAMP)

# torch==2.13.0 first and alone: that CPU wheel is on local disk; letting pip resolve torch
# through the extras could otherwise pull a multi-GB CUDA build.
$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q torch==2.13.0
	$(BIN)/python -m pip install -q -e '.[convert,dev]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/python -m edgeflow demo

test: $(STAMP)
	$(BIN)/python -m pytest -q -ra

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache

# Device installs, checked (issue 19). test-numpy1: the runtime wheel under NumPy 1.26 in a cached
# venv (/var/cache/edgeflow-numpy1, else .ef_cache/) gives the flows it gives under NumPy 2. test-aarch64: docs/deploy_pi.md
# run as written on Debian bookworm arm64 under QEMU (root cached in $EF_AARCH64_CACHE, default
# /var/cache/edgeflow-aarch64); it skips, saying why, without root or an arm64 binfmt handler
# (scripts/aarch64/setup_host.sh installs one on Debian).
.PHONY: test-numpy1 test-aarch64
test-numpy1: $(STAMP)
	$(BIN)/python scripts/numpy1_check.py

test-aarch64: $(STAMP)
	$(BIN)/python scripts/aarch64/check.py

# Optional PTLFlow suite (issue 13, docs/byo.md): PTLFlow needs torchvision, i.e. the multi-GB CUDA
# build of torch, so it lives in its own ignored venv (.venv-ptlflow), outside `make test`.
# test-ptlflow: pwcnet, fastflownet, neuflow as pickle/.pt2/trace through `edgeflow convert` (nodes,
# parity); bench-byo: the same plus latency vs a plain export and INT8 vs FP32 for pwcnet and fastflownet (docs/byo.md numbers).
PTL_VENV := .venv-ptlflow
PTL_STAMP := $(PTL_VENV)/.installed
.PHONY: test-ptlflow bench-byo
$(PTL_STAMP):
	test -x $(PTL_VENV)/bin/python || $(PY) -m venv $(PTL_VENV)
	$(PTL_VENV)/bin/python -m pip install -q torch==2.14.1 torchvision==0.29.1 ptlflow==0.4.2 onnx onnxruntime onnxscript
	$(PTL_VENV)/bin/python -m pip install -q --no-deps -e .
	touch $(PTL_STAMP)

test-ptlflow: $(PTL_STAMP)
	$(PTL_VENV)/bin/python benchmarks/bench_byo.py --rounds 3 --int8 '' --check --out .ef_cache/bench_byo_check.json

bench-byo: $(PTL_STAMP)
	$(PTL_VENV)/bin/python benchmarks/bench_byo.py --check
