"""A script written for the official RLM (alexzhang13/rlm), run here: `python examples/compat_migration.py`.

The one line that differs from the official package's version is the import (see the README's
migration section). As the official client, it reads OPENAI_API_KEY (and OPENAI_BASE_URL, for another
OpenAI-compatible server) from the environment.
"""

import os
import sys
import tempfile

from orchestrator.compat import RLM, RLMLogger  # was: from rlm import RLM; from rlm.logger import RLMLogger


def word_count(text: str) -> int:
    """A custom tool: it runs in this process; code in the sandbox calls it by name."""
    return len(text.split())


rlm = RLM(
    backend="openai",
    backend_kwargs={"model_name": os.environ.get("RLM_MODEL", "gpt-4o-mini")},
    environment="docker",
    max_iterations=10,
    custom_tools={"word_count": {"tool": word_count, "description": "the number of words in a text"}},
    logger=RLMLogger(log_dir=tempfile.mkdtemp(prefix="rlm-logs-")),
    persistent=True,  # one sandbox and namespace for both completions
)
with rlm:
    first = rlm.completion("alpha beta gamma delta", root_prompt="How many words are in the context?")
    second = rlm.completion("epsilon zeta", root_prompt="How many words are in the newest context?")
print(first.response, second.response, first.usage_summary.to_dict()["model_usage_summaries"])
sys.exit(0 if first.response and second.response else 1)
