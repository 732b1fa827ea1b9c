# gridalarm: build the environment, lint, test, run the demo.
#
# Needs Python >= 3.11. The integration tests and the demo need a Kafka broker: GRIDALARM_KAFKA,
# else a Docker engine (testcontainers), else Java 17+ and Maven for the local broker.

PYTHON ?= python3.11
# Fall back to python3 where there is no python3.11 binary (its version is checked below).
ifeq ($(shell command -v $(PYTHON) 2>/dev/null),)
PYTHON := python3
endif

VENV  := .venv
BIN   := $(VENV)/bin
# Touched after a successful install: pip runs again only when pyproject.toml is newer.
STAMP := $(VENV)/.installed

export PIP_DISABLE_PIP_VERSION_CHECK := 1

.PHONY: install system-packages lint test stress demo bench evaluate bundled-models kafka-start kafka-stop es-start es-stop clean

install: $(STAMP)

$(BIN)/python:
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null || { \
	  echo "make: gridalarm needs Python >= 3.11; '$(PYTHON)' is missing or older (run make PYTHON=/path/to/python3.11)" >&2; \
	  exit 1; }
	@$(PYTHON) -m venv $(VENV) || { rm -rf $(VENV); \
	  echo "make: '$(PYTHON) -m venv' failed; on Debian/Ubuntu install the python3.11-venv package" >&2; \
	  exit 1; }

# The example probe in tests/plugins/condorq is installed like any site's plug-in would be, so
# that the tests find it through the gridalarm.producers entry points (docs/producers.md).
$(STAMP): pyproject.toml tests/plugins/condorq/pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -e '.[test]'
	$(BIN)/python -m pip install -q -e tests/plugins/condorq
	@touch $@

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

# Debian packages whose programs the tests run for real (tools/system_packages.sh installs the
# missing ones with apt-get, and fails saying what to install when it cannot).
# chromium: the dashboard's browser test drives Debian's Chromium through Playwright.
SYSTEM_PACKAGES := prometheus-alertmanager chromium

system-packages:
	@tools/system_packages.sh $(SYSTEM_PACKAGES)

# pytest exits 5 when it collects no tests; make fails on it like on any non-zero status, and
# says why, so that a broken test layout can never pass CI as "nothing failed".
test: install lint system-packages
	@$(BIN)/pytest -q -ra --durations=15; status=$$?; \
	if [ $$status -eq 5 ]; then echo "make: pytest collected no tests" >&2; fi; \
	exit $$status

# Fault loops on a real broker (tests/stress; an hour or more): workers joining and leaving
# mid-stream (STRESS_RUNS runs), one replay whose worker is SIGKILLed STRESS_KILLS times, a
# broker SIGKILLed and restarted (ports 39196-39197), a three-node local cluster losing a node
# (ports 39094-39099) and Elasticsearch down a minute under es --follow, each run compared
# with one worker's outputs; a table of the runs at the end.
STRESS_RUNS ?= 50
STRESS_KILLS ?= 10
stress: install
	GRIDALARM_STRESS=1 GRIDALARM_STRESS_RUNS=$(STRESS_RUNS) GRIDALARM_STRESS_KILLS=$(STRESS_KILLS) \
	  $(BIN)/pytest -q tests/stress

demo: install
	$(BIN)/gridalarm demo

bench: install
	$(BIN)/python -m benchmarks.run

# The standard evaluations (simulator, NAB, NASA MSL; ~10-20 min); writes the table into README.
evaluate: install
	$(BIN)/python -m gridalarm.evaluation.standard --readme

# Retrain the lstm-forecast artifacts shipped in models/artifacts (about 1 minute).
bundled-models: install
	$(BIN)/python tools/train_bundled_models.py

kafka-start: install
	$(BIN)/gridalarm kafka start

kafka-stop:
	@if [ -x $(BIN)/gridalarm ]; then $(BIN)/gridalarm kafka stop; else echo "not running"; fi

# A local Elasticsearch node (Elastic's 8.14.3 jars from Maven Central) for the ES producer.
es-start: install
	$(BIN)/gridalarm es start

es-stop:
	@if [ -x $(BIN)/gridalarm ]; then $(BIN)/gridalarm es stop; else echo "not running"; fi

# Stop every server whose data lives under .state (the dev ones, the tests' ones) before deleting
# it: a broker whose files vanish keeps its ports and would block the next start.
clean:
	@if [ -x $(BIN)/gridalarm ]; then \
	  for dir in .state .state/*; do \
	    if [ -f "$$dir/kafka/kafka.pid" ]; then $(BIN)/gridalarm kafka stop --state-dir "$$dir"; fi; \
	    if [ -f "$$dir/es/elasticsearch.pid" ]; then $(BIN)/gridalarm es stop --state-dir "$$dir"; fi; \
	  done; \
	fi
	rm -rf .state
