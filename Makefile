# Two commands do all set-up on a fresh machine: `make demo` and `make test`.
# torch is pinned through constraints.txt: a range admitting newer torch would pull GBs of CUDA wheels.

PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
EXTRAS ?= train,serve,openvino,video,dev
PYTEST_ARGS ?=

.PHONY: install test test-slow demo bench browser-deps web-runtime clean

# The page's in-browser runtime (onnxruntime-web, pinned in package.json + package-lock.json), copied
# out of `npm ci` into the package (inference/ort_web/, ignored by git, in the wheel). Without
# npm, install/test go on with a warning: the server then runs every frame itself and says why.
WEB_RUNTIME := inference/ort_web/runtime.json

$(STAMP): pyproject.toml constraints.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -c constraints.txt -e '.[$(EXTRAS)]'
	touch $(STAMP)

$(WEB_RUNTIME): package.json package-lock.json inference/web_runtime.py scripts/web_runtime.py | $(STAMP)
	$(PY) scripts/web_runtime.py --optional

install: $(STAMP) $(WEB_RUNTIME)

# Rebuilds it unconditionally, and fails without npm.
web-runtime: $(STAMP)
	$(PY) scripts/web_runtime.py

# Debian chromium for the web page tests (Playwright drives it via executable_path; no browser download).
browser-deps:
	@command -v chromium >/dev/null 2>&1 || command -v /usr/bin/chromium >/dev/null 2>&1 || \
	  { echo "installing Debian chromium for the browser tests"; \
	    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null) || \
	    echo "warning: could not install chromium; browser tests will be skipped"; }

test: $(STAMP) $(WEB_RUNTIME) browser-deps
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .
	$(PY) -m pytest -q $(PYTEST_ARGS)

test-slow: $(STAMP) $(WEB_RUNTIME) browser-deps
	$(PY) -m pytest -q -m slow $(PYTEST_ARGS)

demo: $(STAMP) $(WEB_RUNTIME)
	$(PY) -m stylecast.cli demo

bench: $(STAMP) $(WEB_RUNTIME) browser-deps
	$(PY) -m benchmarks --quick

clean:
	rm -rf $(VENV) *.egg-info .pytest_cache node_modules
	find inference/ort_web -type f ! -name README.md -delete
