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
