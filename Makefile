# Set-up and the two jobs of a fresh machine. Every target creates the venv if it is missing.
# The CPU build of torch is installed first so that no multi-GB CUDA build is pulled.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
TORCH ?= torch==2.13.0

.PHONY: install demo test bench clean

$(BIN)/einsearch: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q $(TORCH)
	$(BIN)/pip install -q -e '.[dev]' --config-settings editable_mode=compat
	touch $@

install: $(BIN)/einsearch

# The main job on the embedded defaults.
demo: install
	bash scripts/demo.sh

test: install
	$(BIN)/python -m pytest -n 2 -q

bench: install
	$(BIN)/python bench/sampler.py
	$(BIN)/python bench/ops.py

clean:
	rm -rf $(VENV) *.egg-info .pytest_cache
