# The two commands a newcomer needs: `make demo` and `make test`. Everything they need installs from here.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
AZURITE := node_modules/.bin/azurite
INFRA_VENV := .venv-infra
CHROMIUM := /usr/bin/chromium
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: install demo test lint bench verify-audit azurite-stop clean

install: $(VENV)/.installed $(AZURITE) $(INFRA_VENV)/.installed $(CHROMIUM)

# Debian's Chromium and its driver, for the upload page's browser test.
$(CHROMIUM):
	$(SUDO) apt-get update -qq
	DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq chromium chromium-driver >/dev/null

$(VENV)/.installed: requirements.txt requirements-dev.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements-dev.txt
	touch $@

$(INFRA_VENV)/.installed: requirements-infra.txt
	$(PYTHON) -m venv $(INFRA_VENV)
	$(INFRA_VENV)/bin/python -m pip install --quiet --upgrade pip
	$(INFRA_VENV)/bin/python -m pip install --quiet -r requirements-infra.txt
	touch $@

$(AZURITE): package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	touch $@

demo: install
	$(PY) -m devtools.demo

test: install
	$(PY) -m ruff check .
	$(PY) -m mypy
	$(PY) -m pytest

lint: install
	$(PY) -m ruff check .

bench: install
	$(PY) -m pip install --quiet -r bench/requirements.txt
	$(PY) -m bench.run

verify-audit: install
	$(PY) -m shared.cli --settings $(or $(SETTINGS),.azurite/demo.settings.json) verify-audit

azurite-stop:
	$(PY) -m devtools.demo --stop

clean:
	rm -rf $(VENV) $(INFRA_VENV) node_modules .azurite .demo .pytest_cache .ruff_cache
