# dlbench: `make run` and `make test` set everything up on a machine that has only Python.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install run test bench figures lint clean regress baseline keep-baseline

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

# The CI regression gate: the smoke suite and the textbook suite's quick profile, fresh, each
# against its committed baseline (exit 1 on a regression: worse than the tolerance and
# significant, a result gone missing, or a claim that held and now fails).
regress: install
	rm -rf results/current results/current-textbook
	$(BIN)/dlbench run benchmarks/smoke.toml --out results/current
	$(BIN)/dlbench compare results/baseline results/current
	$(BIN)/dlbench run benchmarks/textbook.toml --quick --out results/current-textbook
	$(BIN)/dlbench compare results/baseline-textbook results/current-textbook

# Refresh both baselines on purpose (after a change that is meant to move the numbers).
baseline: install
	rm -rf results/baseline.new results/baseline-textbook.new
	$(BIN)/dlbench run benchmarks/smoke.toml --out results/baseline.new
	$(BIN)/dlbench run benchmarks/textbook.toml --quick --out results/baseline-textbook.new
	$(MAKE) keep-baseline RUN=results/baseline.new BASELINE=results/baseline
	$(MAKE) keep-baseline RUN=results/baseline-textbook.new BASELINE=results/baseline-textbook

# make keep-baseline RUN=DIR BASELINE=DIR: of the suite's run in RUN, the small files compare
# reads (each entry's scores.csv and manifest.json, the suite's claims.csv and suite.json)
# become BASELINE; RUN is removed.
keep-baseline:
	test -n "$(BASELINE)" -a -f "$(RUN)/suite.json"  # a suite run, and somewhere to keep it
	rm -rf $(BASELINE)
	mkdir -p $(BASELINE)
	cp $(RUN)/suite.json $(BASELINE)/
	if [ -f $(RUN)/claims.csv ]; then cp $(RUN)/claims.csv $(BASELINE)/; fi
	for run in $(RUN)/*/; do if [ -f $$run/scores.csv ]; then \
		mkdir -p $(BASELINE)/$$(basename $$run); \
		cp $$run/scores.csv $$run/manifest.json $(BASELINE)/$$(basename $$run)/; fi; done
	rm -rf $(RUN)

figures: install
	$(BIN)/python benchmarks/readme_figures.py

lint: install
	$(BIN)/ruff check dlbench tests benchmarks

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .ruff_cache
