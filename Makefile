# The README's commands: `make run` (serve with demo data), `make test` (whole suite) and `make serve`
# (the production topology).
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
PORT ?= 8000
SIMULATE ?= 1

.PHONY: run demo serve test lint bench clean

$(BIN)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e .
	$(BIN)/pip check
	touch $@

$(BIN)/.installed-test: $(BIN)/.installed pyproject.toml
	$(BIN)/pip install -q -e '.[test]'
	$(BIN)/pip check
	touch $@

# The benchmark's peers (bench/peers.py) beside the test tools.
$(BIN)/.installed-bench: $(BIN)/.installed-test pyproject.toml
	$(BIN)/pip install -q -e '.[test,bench]'
	$(BIN)/pip check
	touch $@

# `demo` with a private Redis when none answers at REDIS_URL (ops/demo-redis.sh).
run: $(BIN)/.installed
	@BIN=$(BIN) PORT=$(PORT) SIMULATE=$(SIMULATE) ops/demo-redis.sh $(BIN)/python bash ops/demo.sh

# Serves on 127.0.0.1:$(PORT) with daphne; beside it the offline sweep and (SIMULATE=0 turns it
# off) the TTN simulator, all stopped together with Ctrl-C (ops/demo.sh).
demo: $(BIN)/.installed
	@BIN=$(BIN) PORT=$(PORT) SIMULATE=$(SIMULATE) bash ops/demo.sh

# The production topology (ops/serve.py): nginx with TLS on one port in front of gunicorn (HTTP) and
# daphne (/ws/), the offline sweep beside them; all stopped together with Ctrl-C. Needs
# DJANGO_SECRET_KEY and METRICS_TOKEN; the rest is in the README's configuration table.
serve: $(BIN)/.installed
	bash ops/system_deps.sh
	$(BIN)/python manage.py migrate --noinput
	$(BIN)/python ops/serve.py

test: $(BIN)/.installed-test
	bash tests/system_deps.sh
	$(BIN)/ruff check .
	$(BIN)/python -m pytest

# Benchmarks (bench/README.md): `make bench` is the quick profile; `make bench ARGS="--profile full"`.
bench: $(BIN)/.installed-bench
	@command -v wrk >/dev/null 2>&1 || { [ "$$(id -u)" = 0 ] && apt-get install -y -qq wrk >/dev/null 2>&1; } || \
	  echo "wrk not installed: using the Python load generator (slower; see bench/README.md)"
	$(BIN)/python -m bench $(ARGS)

lint: $(BIN)/.installed-test
	$(BIN)/ruff check .

clean:
	rm -rf $(VENV) db.sqlite3 .pytest_cache
