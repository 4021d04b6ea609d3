# `make demo` and `make test` are all a newcomer needs: both run `make setup` first, which is idempotent.
VENV   ?= .venv
PY     := $(VENV)/bin/python
PYTEST_ARGS ?=

.PHONY: setup engine venv seccomp image test demo proto proto-check lint bench bench-context bench-llm clean

setup: engine venv seccomp image

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

seccomp: venv
	@PY=$(PY) bash sandbox_image/seccomp.sh

image: venv
	@PIP=$(VENV)/bin/pip bash sandbox_image/build.sh

test: setup lint
	$(PY) -m pytest $(PYTEST_ARGS)

DEMO_QUERY ?= Which problem occurs most often in these logs, in which service, and what does the runbook say to do about it?

demo: setup
	@if [ -n "$$OPENAI_API_KEY$$OPENAI_BASE_URL" ]; then \
	  echo "== rlm run over examples/sample_context =="; \
	  $(VENV)/bin/rlm run --context examples/sample_context --query "$(DEMO_QUERY)" $(DEMO_ARGS); \
	else \
	  echo "No model endpoint is configured, so no RLM runs. To run one, set OPENAI_API_KEY (and"; \
	  echo "OPENAI_BASE_URL for another OpenAI-compatible server: vLLM, Ollama, llama.cpp), then make demo."; \
	  echo "Meanwhile, the platform at work: a program explores the same context in a sandbox."; \
	  echo "== rlm exec (runc) =="; \
	  $(VENV)/bin/rlm exec --context examples/sample_context --file examples/analyze_context.py; \
	  echo "== rlm exec (runsc, gVisor) =="; \
	  $(VENV)/bin/rlm exec --context examples/sample_context --file examples/analyze_context.py --runtime runsc; \
	fi

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

bench-llm: setup
	$(PY) benchmarks/llm_bench.py

clean:
	rm -rf .build $(VENV)
