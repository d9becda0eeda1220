# mlnb: the two commands. `make build` sets everything up and runs the example pipeline end to
# end; `make test` sets everything up and runs the tests. Both work on a fresh machine.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
BIN := $(VENV)/bin
LABEXT := mlnb/labextension/package.json

# No telemetry, anywhere we run things.
export PLOOMBER_STATS_ENABLED := false
export PLOOMBER_VERSION_CHECK_DISABLED := true
export MLFLOW_DISABLE_TELEMETRY := true
export DO_NOT_TRACK := 1
export DVC_NO_ANALYTICS := 1

.PHONY: setup data build test unit nbval lint lab clean convert-check browser prometheus

setup: $(VENV)/.installed $(LABEXT)

$(VENV)/.installed: pyproject.toml $(wildcard jupyter-config/*.json)
	$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 11), "mlnb needs Python 3.11+"'
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test]'
	$(PY) -m ipykernel install --sys-prefix --name python3 --display-name "Python 3 (mlnb)" >/dev/null
	@# what a regular install's data files do (an editable install skips them): enable the server extension
	install -D -m 644 jupyter-config/mlnb.json $(VENV)/etc/jupyter/jupyter_server_config.d/mlnb.json
	@# the workbench's settings (README, "JupyterLab"): Ploomber's Jupyter integration off (its contents
	@# manager breaks the file browser, its lab extension logs errors), no news or update checks
	install -D -m 644 jupyter-config/jupyter_server_config.json $(VENV)/etc/jupyter/jupyter_server_config.json
	install -D -m 644 jupyter-config/page_config.json $(VENV)/etc/jupyter/labconfig/page_config.json
	install -D -m 644 jupyter-config/overrides.json $(VENV)/share/jupyter/lab/settings/overrides.json
	touch $@

# The JupyterLab frontend (extension/, TypeScript) built into a prebuilt extension and linked into the venv.
$(LABEXT): $(VENV)/.installed $(wildcard extension/src/*.ts extension/style/*) extension/package.json extension/yarn.lock
	cd extension && export PATH="$(abspath $(BIN)):$$PATH" && jlpm install --immutable && jlpm build
	export PATH="$(abspath $(BIN)):$$PATH" && jupyter-builder develop --overwrite . >/dev/null
	touch $@

# Browser tests drive Debian's Chromium (never a downloaded browser).
browser:
	test -x /usr/bin/chromium || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; }

# Debian's Prometheus: promtool checks the shipped alert rules (mlnb/templates/project/monitoring), and the
# canary tests start their own `prometheus` process (the package's service is never started).
prometheus:
	test -x /usr/bin/prometheus || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends prometheus >/dev/null; }

data: setup
	$(PY) scripts/make_raw_data.py

# --no-dvc: the example commits no dvc.lock (a build's outputs are never byte-identical, so a
# committed one would be rewritten by every fresh clone); `mlnb build` records them (README).
build: setup data
	$(BIN)/mlnb build --no-dvc
	$(BIN)/mlnb report

lint: setup
	$(BIN)/ruff check mlnb tests scripts benchmarks
	$(BIN)/lint-imports
	$(BIN)/mypy
	$(BIN)/hadolint --failure-threshold warning Dockerfile

test: setup data lint browser prometheus
	cd extension && PATH="$(abspath $(BIN)):$$PATH" jlpm test --silent
	$(BIN)/pytest
	$(MAKE) --no-print-directory nbval

unit: setup
	$(BIN)/pytest tests/unit

# nbval regression checks: the blessed references in tests/nbval/ re-executed (real kernels) in a
# workspace built with env.ci.yaml, every cell's output compared (see README, "Regression checks").
nbval: setup data
	$(BIN)/pytest -p no:cacheprovider --nbval --nbval-sanitize-with tests/nbval/sanitize.cfg tests/nbval

convert-check: setup
	$(PY) scripts/check_conversions.py examples/exploratory

# JupyterLab on the project (scripts/lab: the same command the browser tests start); LAB_ARGS go to
# `jupyter lab`, e.g. `make lab LAB_ARGS=--port=9999`.
LAB_ARGS ?=
lab: setup data
	VENV=$(VENV) scripts/lab $(LAB_ARGS)

clean:
	rm -rf products reports mlflow.db mlartifacts mlruns dvc.lock
