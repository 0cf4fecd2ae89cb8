# The whole set-up for a newcomer is `make demo` and `make test`; both install what they need.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: deps venv test demo bench soak lint clean

deps:
	@scripts/install-deps.sh
	@scripts/fetch-memberlist.sh

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[test]'
	touch $(STAMP)

venv: $(STAMP)

test: deps venv
	$(BIN)/python -m pytest -q

demo: deps venv
	$(BIN)/l2agent lab demo

bench: deps venv
	$(BIN)/python -m pip install -q -e '.[test,bench]'
	$(BIN)/python -m bench

soak: deps venv
	$(BIN)/python -m bench.soak --minutes 10

lint: venv
	$(BIN)/ruff check l2agent gossip tests bench
	$(BIN)/ruff format --check l2agent gossip tests bench
	$(BIN)/mypy

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .cache
