# Two entry points for a fresh machine: `make stack` (the service on this machine) and `make test`.
PYTHON ?= python3
VENV := .venv
STAMP := $(VENV)/.installed

.PHONY: venv chromium lint check test stack checkov

# uv installs the packages: the same versions pip resolves, in seconds rather than minutes (it
# downloads in parallel and links from its cache). It is the one package pip installs. Like pip,
# it compiles the bytecode at install (the suites start many Python processes, and a machine with
# PYTHONDONTWRITEBYTECODE set would compile every module in each of them).
UV_VERSION := 0.13.9
UV := $(VENV)/bin/uv

$(UV):
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet uv==$(UV_VERSION)

# message-cancel-watch, the agent's library, and cancel-service-cli, the operator's command, are
# packages of their own, installed beside the service (the local stack's stand-in agent and the
# tests import them from there); neither is in the functions' code (template.yaml's CodeUri).
$(STAMP): pyproject.toml message-cancel-watch/pyproject.toml cancel-service-cli/pyproject.toml | $(UV)
	$(UV) pip install --quiet --compile-bytecode --python $(VENV)/bin/python \
	  -e ./message-cancel-watch -e ./cancel-service-cli -e '.[dev]'
	touch $(STAMP)

venv: $(STAMP)

# checkov (pyproject.toml's `scan` group) pins its own boto3: it gets a virtualenv of its own.
SCAN_VENV := .venv-checkov
$(SCAN_VENV)/.installed: pyproject.toml | $(UV)
	$(UV) venv --quiet --allow-existing --python $(PYTHON) $(SCAN_VENV)
	$(UV) pip install --quiet --python $(SCAN_VENV)/bin/python --group scan
	touch $@

# The template against checkov's CloudFormation checks; each skipped check says why in the
# resource's Metadata. --skip-download: no call to the vendor's platform.
checkov: $(SCAN_VENV)/.installed
	$(SCAN_VENV)/bin/checkov --file template.yaml --framework cloudformation --compact --quiet --skip-download

# Debian's Chromium for the demo page test (Playwright cannot download browsers here).
chromium:
	@command -v chromium >/dev/null 2>&1 || { \
	  export DEBIAN_FRONTEND=noninteractive; \
	  apt-get update -qq && apt-get install -y -qq --no-install-recommends chromium >/dev/null; }

# The static checks, in seconds.
lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	PYTHONPATH=tests $(VENV)/bin/lint-imports --no-logo
	$(VENV)/bin/mypy
	$(VENV)/bin/cfn-lint template.yaml

# The fast tier: the static checks and the unit tests (no AWS, no server, no Docker).
check: lint
	$(VENV)/bin/pytest tests/unit -q

# Every suite, one worker more than the cores (a file's tests on one worker, the SAM files
# together: tests/conftest.py): the tests wait for Docker, subprocesses and retries' backoff a
# quarter of the time, which the extra worker fills (2 cores: `bash .ci/run` 587 s from a fresh
# clone, against 643 to 727 s with one worker per core). The SAM tests prepare Docker and the
# SAM CLI themselves (scripts/sam-local-setup). pytest exits 5 when it collects nothing; that fails here like any
# other error.
TEST_WORKERS := $(shell echo $$(( $$(nproc) + 1 )))
test: $(STAMP) chromium
	$(VENV)/bin/pytest -n $(TEST_WORKERS) --dist loadfile

stack: $(STAMP)
	$(VENV)/bin/python -m devstack
