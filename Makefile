# `make train` and `make test` set everything up on first use (a .venv made with pip), then run.
PYTHON ?= python3
VENV ?= .venv
# torch is pinned on the reference machine (these wheels are on its disk); elsewhere, e.g.
#   make test TORCH_SPEC="torch torchvision"
TORCH_SPEC ?= torch==2.14.1 torchvision==0.29.1
# Extra Hydra overrides for `make train`, e.g. make train ARGS="model.upsample=maxunpool"
ARGS ?=

BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: setup train test coverage lint docs clean

setup: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet $(TORCH_SPEC)
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	# Optuna 4 for the sweeper's SQLite storage: hydra-optuna-sweeper 1.3 pins optuna<3, yet runs on 4.
	$(BIN)/python -m pip install --quiet --no-warn-conflicts "optuna>=4,<5"
	touch $(STAMP)

train: $(STAMP)
	$(BIN)/unet-train $(ARGS)

# One test process per core (pytest-xdist), each with its share of the threads (tests/conftest.py):
# the suite's CLI runs spend much of their time importing, which one process cannot overlap.
# --durations: the 15 slowest tests are shown on every run; a test over 20 s gives its reason ("Slow: ...").
# The tests marked own_process (OpenVINO in the test process, see pyproject.toml) then run on their own.
# Only the files that mark a test own_process are collected for that run: collecting the whole suite
# again, only to deselect all but those, would cost seconds of imports.
OWN_PROCESS_FILES = $(shell grep -l 'own_process' tests/test_*.py)
test: $(STAMP)
	$(BIN)/python -m pytest -q -n auto --durations=15 -m "not own_process"
	$(BIN)/python -m pytest -q --durations=5 -m own_process $(OWN_PROCESS_FILES)

# The suite under coverage (slower: not what CI runs); the figure is reported in docs/results/tests.md.
# Split as `test` is: an own_process test in a worker can take the worker down, and its coverage with it.
coverage: $(STAMP)
	$(BIN)/python -m pytest -q -n auto -m "not own_process" --cov=unet --cov-report=
	$(BIN)/python -m pytest -q -m own_process $(OWN_PROCESS_FILES) --cov=unet --cov-append --cov-report=term --cov-report=json:coverage.json

# The documentation site into site/ (git-ignored); --strict: a broken link, a missing anchor or a page
# left out of the nav fails. docs/reference/configuration.md is generated from configs/ first.
docs: $(STAMP)
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict -d site

lint: $(STAMP)
	$(BIN)/ruff check . && $(BIN)/ruff format --check .

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache .coverage coverage.json site docs/reference/configuration.md docs/upsampling
