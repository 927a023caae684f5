# The two commands of the README:  `make demo`  and  `make test`.
# Each first runs scripts/bootstrap.sh, which creates .venv/ and installs whatever is still missing.
VENV := .venv
PY := $(VENV)/bin/python
OUT ?= out/demo

.PHONY: setup demo test lint typecheck unit bench bench-quick clean

setup:
	@./scripts/bootstrap.sh

demo: setup
	$(VENV)/bin/reconstream demo --out $(OUT)

lint: setup
	$(VENV)/bin/ruff check recon plugins hardware_sim tests benchmarks
	$(VENV)/bin/ruff format --check recon plugins hardware_sim tests benchmarks

typecheck: setup
	$(VENV)/bin/mypy

unit: setup
	$(PY) -m pytest

test: lint typecheck unit

bench: setup
	$(VENV)/bin/reconstream bench --profile quick --out out/bench

# What CI runs after the tests: the budgeted benchmarks, failing on a ratio-budget breach.
bench-quick: setup
	$(VENV)/bin/reconstream bench --profile quick --budgeted --check --out out/bench

clean:
	rm -rf out .pytest_cache .mypy_cache .ruff_cache
