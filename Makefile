# Entry points for developers and CI. `make test` is the README's test command; .ci/run runs it.
# The tests start their own Kafka (fetching its jars from Maven Central on first use), so nothing
# needs to run beforehand.

PYTHON ?= python3
BIN := .venv/bin

.PHONY: test bench demo demo-postgres kafka-start kafka-stop clean lag-screenshot

# The virtualenv, (re)installed with the pinned versions whenever pyproject.toml or constraints.txt change.
.venv: pyproject.toml constraints.txt
	$(PYTHON) -m venv .venv
	$(BIN)/pip install -q -c constraints.txt -e ".[test]"
	touch .venv

# Lint and types first (seconds), then every test.
test: .venv
	$(BIN)/ruff check .
	$(BIN)/mypy
	$(BIN)/pytest -q

# Every benchmark of benchmarks/README.md on a broker of its own, about 20 minutes on 2 cores: one JSON
# line each on stdout, appended to benchmarks/results.jsonl, then the targets of issue #12 beside today's
# figures. The profile needs py-spy (a dev tool, not a project dependency): $(BIN)/pip install py-spy.
bench: .venv
	$(BIN)/python -m benchmarks

# The whole pipeline locally: Kafka (unless KAFKA_BOOTSTRAP_SERVERS is set), topics, simulators,
# a worker, generated changes; prints what was delivered, skipped, dead-lettered, lost and stale.
demo: .venv
	$(BIN)/contactsync demo

# The same on a real source: a local Postgres (PostgreSQL's server binaries needed; without them, one
# line saying which package, exit 2), Kafka Connect with Debezium, SQL inserts, updates and deletes.
demo-postgres: .venv
	$(BIN)/contactsync demo --source postgres

# docs/lag-page.png: the lag page of a worker falling behind, shot with headless Chromium (~2 min).
lag-screenshot: .venv
	$(BIN)/python docs/screenshot_lag.py

kafka-start: .venv
	$(BIN)/contactsync kafka start

kafka-stop: .venv
	$(BIN)/contactsync kafka stop

# Stops the local broker and removes its data (var/) and Python caches; keeps .venv and the jar
# cache (~/.cache/contactsync/kafka), which live on between runs.
clean:
	if [ -x $(BIN)/contactsync ]; then $(BIN)/contactsync kafka stop; fi
	rm -rf var .pytest_cache .mypy_cache
	find . -path ./.venv -prune -o -name __pycache__ -type d -exec rm -rf {} +
