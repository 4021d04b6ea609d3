# `make demo` and `make test` are all a newcomer needs: both run `make setup` first, which is idempotent.
VENV   ?= .venv
PY     := $(VENV)/bin/python
PYTEST_ARGS ?=

.PHONY: setup engine venv image test demo proto proto-check lint bench bench-context clean

setup: engine venv image

engine:
	@bash sandbox_image/host_setup.sh

venv: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	@test -x $(PY) || python3 -m venv $(VENV)
	@mkdir -p .build
	@$(PY) -m pip install --quiet --disable-pip-version-check -e '.[dev]' >.build/pip.log 2>&1 \
	  || { cat .build/pip.log; echo "pip install failed (log above)"; exit 1; }
	@$(PY) -c 'import orchestrator, grpc_tools, pytest' 
	@touch $@

image: venv
	@PIP=$(VENV)/bin/pip bash sandbox_image/build.sh

test: setup lint
	$(PY) -m pytest $(PYTEST_ARGS)

demo: setup
	@echo "== rlm exec: a small analysis program over examples/sample_context (runc) =="
	$(VENV)/bin/rlm exec --context examples/sample_context --file examples/analyze_context.py
	@echo "== the same under gVisor (runsc) =="
	$(VENV)/bin/rlm exec --context examples/sample_context --file examples/analyze_context.py --runtime runsc

proto: venv
	$(PY) proto/generate.py

proto-check: venv
	$(PY) proto/generate.py --check

lint: venv
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy

bench: setup
	$(PY) benchmarks/sandbox_bench.py

bench-context: setup
	$(PY) benchmarks/context_bench.py

clean:
	rm -rf .build $(VENV)
