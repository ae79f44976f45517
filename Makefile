# Two commands do all the set-up: `make demo` and `make test` (see README.md).
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
# The CPU build of torch lies on disk on these machines; pinning it first keeps pip from
# pulling a multi-GB CUDA build when the calo extra asks for torch.
TORCH := torch==2.13.0

.PHONY: demo test lint typecheck clean

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q $(TORCH)
	$(PY) -m pip install -q -e '.[calo,dev]'
	touch $@

demo: $(VENV)/.installed
	$(VENV)/bin/optuna-robust demo --storage sqlite:///robust.db

test: $(VENV)/.installed
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy
	$(PY) -m pytest -q

lint: $(VENV)/.installed
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy

clean:
	rm -rf $(VENV) robust.db artifacts
