# dlbench: `make run` and `make test` set everything up on a machine that has only Python.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install run test bench figures lint clean regress baseline

install: $(STAMP)

# torch first, pinned exactly: these machines hold a CPU wheel of that version, and the package's
# own torch range is then already satisfied (any other specifier would pull a CUDA build).
$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet torch==2.13.0
	$(BIN)/python -m pip install --quiet -e '.[test,dask,pytorch-optimizer]'
	touch $(STAMP)

run: install
	$(BIN)/dlbench cv --k 4 --repeats 3

# The report's browser tests run where Debian's chromium is installed (apt-get install chromium)
# and are skipped, saying so, where it is not.
test: install
	$(BIN)/python -m pytest

bench: install  # every benchmark runs; the target fails if any missed its bar
	@status=0; for b in cv optimize cost process threads cells models; do \
		$(BIN)/python benchmarks/bench_$$b.py || status=1; done; exit $$status

# The CI regression gate: the smoke suite, fresh, against the committed baseline (exit 1 on a
# regression: worse than the tolerance and significant, or a result gone missing).
regress: install
	rm -rf results/current
	$(BIN)/dlbench run benchmarks/smoke.toml --out results/current
	$(BIN)/dlbench compare results/baseline results/current

# Refresh the baseline on purpose (after a change that is meant to move the numbers): the smoke
# suite's scores and manifests only, the small files.
baseline: install
	rm -rf results/baseline.new
	$(BIN)/dlbench run benchmarks/smoke.toml --out results/baseline.new
	rm -rf results/baseline
	for run in results/baseline.new/*/; do \
		mkdir -p results/baseline/$$(basename $$run); \
		cp $$run/scores.csv $$run/manifest.json results/baseline/$$(basename $$run)/; done
	rm -rf results/baseline.new

figures: install
	$(BIN)/python benchmarks/readme_figures.py

lint: install
	$(BIN)/ruff check dlbench tests benchmarks

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .ruff_cache
