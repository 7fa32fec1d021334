# Set-up and the two jobs of a fresh machine. Every target creates the venv if it is missing.
# The CPU build of torch is installed first so that no multi-GB CUDA build is pulled.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
TORCH ?= torch==2.13.0

.PHONY: install demo test bench bench-tasks clean

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
	$(BIN)/python -m pytest -n 2

# The benchmarks (each writes its own section of bench/RESULTS.md); run them on a quiet machine.
bench: install
	$(BIN)/python bench/sampler.py
	$(BIN)/python bench/ops.py
	$(BIN)/python bench/cpu_kernels.py
	$(BIN)/python bench/evaluate.py
	$(BIN)/python bench/search.py
	$(BIN)/python bench/cli_latency.py

# The training-heavy ones (tens of minutes each on 2 cores).
bench-tasks: install
	$(BIN)/python bench/mqar_separation.py
	$(BIN)/python bench/search_real.py
	$(BIN)/python bench/icl_regression.py
	$(BIN)/python bench/trainer_reference.py
	$(BIN)/python bench/recipe_ablation.py
	$(BIN)/python bench/task_separation.py
	$(BIN)/python bench/scale.py

# Issue 17 part 5's search-quality protocol: (a) Pareto fronts on three MQAR settings, (b) MAD at equal
# parameters, (c) five strategies x 3 seeds; then those strategies on a landscape fitted to (c)'s runs.
# Hours of CPU: for a big machine (WORKERS=16).
.PHONY: bench-quality
WORKERS ?= 2
bench-quality: install
	$(BIN)/python bench/search_quality.py all --workers $(WORKERS) --out bench-quality-stores
	$(BIN)/python bench/strategy_landscape.py --store bench-quality-stores/quality.db --task mqar-cpu

clean:
	rm -rf $(VENV) *.egg-info .pytest_cache
