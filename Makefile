# Two commands do all set-up on a fresh machine: `make demo` and `make test`.
# torch is pinned through constraints.txt: a range admitting newer torch would pull GBs of CUDA wheels.

PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
EXTRAS ?= train,serve,openvino,video,dev
PYTEST_ARGS ?=

.PHONY: install test test-slow demo bench browser-deps clean

$(STAMP): pyproject.toml constraints.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -c constraints.txt -e '.[$(EXTRAS)]'
	touch $(STAMP)

install: $(STAMP)

# Debian chromium for the web page tests (Playwright drives it via executable_path; no browser download).
browser-deps:
	@command -v chromium >/dev/null 2>&1 || command -v /usr/bin/chromium >/dev/null 2>&1 || \
	  { echo "installing Debian chromium for the browser tests"; \
	    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null) || \
	    echo "warning: could not install chromium; browser tests will be skipped"; }

test: $(STAMP) browser-deps
	$(PY) -m pytest -q $(PYTEST_ARGS)

test-slow: $(STAMP) browser-deps
	$(PY) -m pytest -q -m slow $(PYTEST_ARGS)

demo: $(STAMP)
	$(PY) -m stylecast.cli demo

bench: $(STAMP)
	$(PY) -m benchmarks --quick

clean:
	rm -rf $(VENV) *.egg-info .pytest_cache
