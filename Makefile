# Two commands on a fresh machine: `make demo` and `make test`. Each sets up what it needs.
# System packages (mosquitto, victoria-metrics, Qt's libraries) come from .ci/install-system.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
export QT_QPA_PLATFORM ?= offscreen

.PHONY: demo test lint bench screenshot system clean package

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

system:
	bash .ci/install-system

## Run the station with the embedded broker and a simulated ward of 8 beds.
## Without a display it runs offscreen; set DISPLAY (or run on a desktop) to see the window.
demo: $(STAMP)
	@if [ -n "$$DISPLAY" ] || [ -n "$$WAYLAND_DISPLAY" ]; then unset QT_QPA_PLATFORM; fi; \
	bash .ci/install-system --runtime && $(VENV)/bin/station --demo

## The whole suite: lint, types, import contract, unit, Qt and integration tests.
test: $(STAMP)
	bash .ci/install-system
	$(MAKE) lint
	$(PY) -m pytest

lint: $(STAMP)
	$(VENV)/bin/ruff check station tests
	$(VENV)/bin/ruff format --check station tests
	$(VENV)/bin/mypy
	$(VENV)/bin/lint-imports

## Each line prints one JSON object (runs and medians of BENCH_REPEAT runs) and stops make when
## the bench finds its own inputs wrong (beds not fed, no alarm in the alarms scenario).
BENCH_REPEAT ?= 3
bench: $(STAMP)
	$(VENV)/bin/station bench --beds 8 --rate 1 --duration 20 --repeat $(BENCH_REPEAT)
	$(VENV)/bin/station bench --beds 64 --rate 1 --duration 20 --repeat $(BENCH_REPEAT)
	$(VENV)/bin/station bench --beds 8 --flood --duration 15 --repeat $(BENCH_REPEAT)
	$(VENV)/bin/station bench --beds 64 --rate 1 --duration 40 --scenario alarms --repeat $(BENCH_REPEAT)
	$(VENV)/bin/station bench --beds 8 --flood --historian --duration 15 --repeat $(BENCH_REPEAT)
	$(VENV)/bin/station bench --beds 64 --duration 30 --scenario flood-ward --repeat $(BENCH_REPEAT)
	$(VENV)/bin/station bench --scenario restart-backlog --backlog-beds 64 --backlog-seconds 3600 \
		--repeat $(BENCH_REPEAT)

## The Debian package dist/station_<version>_<arch>.deb, built on this release's /usr/bin/python3
## (packaging/README.md). Builds without root and without the .venv (install-system may sudo).
package:
	bash .ci/install-system --package
	bash packaging/build-deb.sh

screenshot: $(STAMP)
	$(VENV)/bin/station --demo --screenshot resources/ward.png --screenshot-after 8

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .import_linter_cache
