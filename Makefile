# The whole set-up for a newcomer is `make demo` and `make test`; both install what they need.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: deps venv test demo bench soak lint clean image lock

deps:
	@scripts/install-deps.sh
	@scripts/fetch-memberlist.sh

# Every package comes pinned and hash-checked from requirements/dev.lock, whose runtime part
# is requirements/runtime.lock, the one the image installs (`make lock` writes both).
$(STAMP): pyproject.toml requirements/dev.lock
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --require-hashes -r requirements/dev.lock
	$(BIN)/python -m pip install -q --no-build-isolation -e '.[test,dev]'
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

# The images localhost/l2agent:dev and localhost/l2agent-frr:dev, with podman and no registry
# (README, "The image"): Debian bases made with mmdebstrap, cached by content key in .cache/.
image: deps venv
	PYTHON=$(BIN)/python scripts/image/build.sh

# Re-pin after a change to pyproject.toml's dependencies, from the package index alone (this
# machine's pip settings are left out); existing pins stay unless LOCK_ARGS=--upgrade.
LOCK := env -u PIP_FIND_LINKS PIP_CONFIG_FILE=/dev/null CUSTOM_COMPILE_COMMAND="make lock" \
	$(BIN)/pip-compile --quiet --generate-hashes --strip-extras --allow-unsafe \
	--no-emit-index-url --no-emit-find-links $(LOCK_ARGS)
lock: venv
	$(LOCK) -o requirements/runtime.lock pyproject.toml
	$(LOCK) --extra test --extra dev --all-build-deps -c requirements/runtime.lock \
		-o requirements/dev.lock pyproject.toml

lint: venv
	$(BIN)/ruff check l2agent gossip tests bench
	$(BIN)/ruff format --check l2agent gossip tests bench
	$(BIN)/mypy

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .cache
