# The two commands of the README: `make run` (serve with demo data) and `make test` (whole suite).
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
PORT ?= 8000
SIMULATE ?= 1

.PHONY: run test lint bench clean

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

# Serves on 127.0.0.1:$(PORT) with daphne (dashboard_project.asgi_server: it drains before it
# stops); beside it the offline sweep and (SIMULATE=0 turns it off) the TTN simulator. Ctrl-C, or
# SIGTERM to make or to its process group, stops all three: each finishes what is in flight and
# exits 0, and so does the recipe. The trap forwards the first signal to the children only
# (`trap 'kill 0' EXIT INT TERM` signalled its own shell from inside its TERM trap, re-entering it
# until bash overflowed its stack: make's "Segmentation fault"); a signal that arrived before it
# can still cut one `wait` short, hence waiting again until each child is gone.
run: $(BIN)/.installed
	$(BIN)/python manage.py migrate --noinput
	$(BIN)/python manage.py seed_demo
	@echo ""
	@echo "  coldchain-dashboard: http://127.0.0.1:$(PORT)/   log in as demo / $${DEMO_PASSWORD:-demo} (admin: admin / $${ADMIN_PASSWORD:-admin})"
	@echo ""
	@trap 'trap "" INT TERM; kill -TERM $$pids 2>/dev/null' INT TERM; \
	$(BIN)/python manage.py sweep_devices --every 60 >/dev/null & pids=$$!; \
	if [ "$(SIMULATE)" != 0 ]; then $(BIN)/python manage.py simulate_ttn --url http://127.0.0.1:$(PORT) & pids="$$pids $$!"; fi; \
	$(BIN)/python -m dashboard_project.asgi_server -b 127.0.0.1 -p $(PORT) --ping-interval 10 --ping-timeout 10 \
	  dashboard_project.asgi:application & pids="$$pids $$!"; \
	wait -n; kill -TERM $$pids 2>/dev/null; \
	status=0; for pid in $$pids; do \
	  while kill -0 $$pid 2>/dev/null; do wait $$pid; done; wait $$pid || status=$$?; \
	done; exit $$status

test: $(BIN)/.installed-test
	bash tests/system_deps.sh
	$(BIN)/ruff check .
	$(BIN)/python -m pytest

# Benchmarks (bench/README.md): `make bench` is the quick profile; `make bench ARGS="--profile full"`.
bench: $(BIN)/.installed-test
	@command -v wrk >/dev/null 2>&1 || { [ "$$(id -u)" = 0 ] && apt-get install -y -qq wrk >/dev/null 2>&1; } || \
	  echo "wrk not installed: using the Python load generator (slower; see bench/README.md)"
	$(BIN)/python -m bench $(ARGS)

lint: $(BIN)/.installed-test
	$(BIN)/ruff check .

clean:
	rm -rf $(VENV) db.sqlite3 .pytest_cache
