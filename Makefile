# The two commands of the README: `make demo` and `make test`. Both set up .venv on first use.
VENV ?= .venv
PY := $(VENV)/bin/python
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1
export HF_DATASETS_OFFLINE := 1

.PHONY: setup demo test test-fast check lint format bench clean

# Two installs, each shown as it goes (minutes of torch are no time for a silent pip):
# - the demo's: CPU torch, the visual expert and scikit-image, nothing else (no Ray, browser or transformers);
# - the full one for the tests, lint and every backend; it covers the demo too.
DEMO_INSTALLED := $(VENV)/.demo-installed
# The CPU torch wheel first: a plain `torch` requirement would otherwise pull the CUDA build.
TORCH := torch==2.13.0

# An editable install leaves mmad's own modules uncompiled, and where PYTHONDONTWRITEBYTECODE is set
# (as on this project's machines) every `mmad` process, and each of its image workers, compiled them
# again: 0.15 s a start. Python recompiles a module whose source is newer, so an edit is never stale.
BYTECODE = $(PY) -m compileall -q src/mmad > /dev/null

$(PY):
	python3 -m venv $(VENV)

$(DEMO_INSTALLED): pyproject.toml | $(PY)
	@echo "== installing what the demo needs into $(VENV): CPU torch, the visual expert, scikit-image (once)"
	$(PY) -m pip install --progress-bar on $(TORCH)
	$(PY) -m pip install --progress-bar on -e '.[demo]'
	touch $@

$(VENV)/.installed: pyproject.toml | $(PY)
	@echo "== installing mmad with every extra the tests use into $(VENV) (once)"
	$(PY) -m pip install --progress-bar on --upgrade pip
	$(PY) -m pip install --progress-bar on $(TORCH)
	$(PY) -m pip install --progress-bar on -e '.[dev,expert,demo,hf,ray]'
	touch $(DEMO_INSTALLED) $@

setup: $(VENV)/.installed

demo: $(DEMO_INSTALLED)
	$(BYTECODE)
	$(VENV)/bin/mmad demo --force  # replaces the folder of an earlier demo, never anything else

# One worker per core; the tests on Ray share one worker and its one local Ray (see tests/conftest.py).
WORKERS ?= auto
PYTEST_PARALLEL := -n $(WORKERS) --dist loadgroup
# The edit-test loop: no Ray, Chromium, torch model or child process.
FAST := not slow and not ray and not browser and not expert and not hf and not subprocess

test: setup
	$(BYTECODE)
	$(PY) -m pytest $(PYTEST_PARALLEL) --durations=30

test-fast: setup
	$(BYTECODE)
	$(PY) -m pytest $(PYTEST_PARALLEL) -m "$(FAST)"

check: setup
	$(VENV)/bin/ruff format --check src tests bench
	$(VENV)/bin/ruff check src tests bench
	$(VENV)/bin/mypy

format: setup
	$(VENV)/bin/ruff format src tests bench
	$(VENV)/bin/ruff check --fix src tests bench

bench: setup
	status=0; for script in bench/bench_*.py bench/parser_report.py; do $(PY) $$script || status=1; done; exit $$status

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache build dist src/*.egg-info
