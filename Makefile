# The two commands a newcomer runs: `make demo` and `make test`.
PYTHON ?= python3
VENV ?= venv
PY := $(VENV)/bin/python
STACK ?= dev
export DO_NOT_TRACK := 1
export KEDRO_DISABLE_TELEMETRY := true

.PHONY: install demo synth test lint bench clean

$(VENV)/.installed: requirements.txt example/requirements.txt
	@$(PYTHON) -c 'import sys; sys.exit("kedro-batch needs Python 3.11+, found " + sys.version.split()[0]) if sys.version_info < (3, 11) else None'
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.txt
	$(PY) -m pip check
	touch $@

install: $(VENV)/.installed

synth: install
	$(PY) -m infra synth --stack $(STACK)

demo: install
	rm -rf build/demo
	$(PY) -m infra local-run --stack $(STACK) --keep build/demo --report build/demo/report.json \
		--timeline build/demo/timeline.html

lint: install
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .

test: install lint
	$(PY) -m pytest -q -n 2 --dist loadfile

bench: install
	$(PY) benchmarks/compiler.py

clean:
	rm -rf build .pytest_cache .hypothesis
