# Two commands do all the set-up: `make demo` and `make test` (see README.md).
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
# The CPU build of torch lies on disk on these machines; pinning it first keeps pip from
# pulling a multi-GB CUDA build when the calo extra asks for torch.
TORCH := torch==2.13.0

# The core suite also runs against the oldest Optuna that pyproject.toml allows, in a venv with
# the core's own dependencies only (no torch, matplotlib or plotly): keep the pin equal to the
# lower bound of "optuna>=..." (tests/test_package_structure.py checks it).
OLDEST_OPTUNA := optuna==4.5.0
OLD_VENV := .venv-optuna-oldest
CORE_TESTS := tests/test_select.py tests/test_sampler.py tests/test_evaluate.py \
	tests/test_pruner.py tests/test_stats.py tests/test_records.py tests/test_report.py \
	tests/test_optuna_compat.py tests/test_package_structure.py tests/test_direction.py \
	tests/test_groups.py tests/test_resume_and_failures.py tests/test_properties.py \
	tests/test_workers.py tests/test_planned.py tests/test_planned_optimize.py

.PHONY: demo test test-oldest-optuna lint typecheck clean

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q $(TORCH)
	$(PY) -m pip install -q -e '.[calo,dev]'
	touch $@

$(OLD_VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(OLD_VENV)
	$(OLD_VENV)/bin/python -m pip install -q --upgrade pip
	$(OLD_VENV)/bin/python -m pip install -q '$(OLDEST_OPTUNA)' -e . pytest pytest-timeout hypothesis
	touch $@

demo: $(VENV)/.installed
	$(VENV)/bin/optuna-robust demo --storage sqlite:///robust.db

test: $(VENV)/.installed
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy
	$(PY) -m pytest -q
	$(MAKE) test-oldest-optuna

# PostgreSQL needs a driver this venv lacks, and the seed test needs torch and scikit-learn:
# both run in the main suite above.
test-oldest-optuna: $(OLD_VENV)/.installed
	$(OLD_VENV)/bin/python -m pytest -q -p no:cacheprovider -m "not postgres" \
		-k "not fit_every_library" $(CORE_TESTS)

lint: $(VENV)/.installed
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy

clean:
	rm -rf $(VENV) $(OLD_VENV) robust.db artifacts
