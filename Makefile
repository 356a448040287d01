# Two entry points for a fresh machine: `make stack` (the service on this machine) and `make test`.
PYTHON ?= python3
VENV := .venv
STAMP := $(VENV)/.installed

.PHONY: venv test stack

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --upgrade pip
	$(VENV)/bin/pip install --quiet -e '.[dev]'
	touch $(STAMP)

venv: $(STAMP)

# pytest exits 5 when it collects nothing; that fails here like any other error.
test: $(STAMP)
	$(VENV)/bin/pytest

stack: $(STAMP)
	$(VENV)/bin/python -m devstack
