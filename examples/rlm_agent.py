"""RLMAgent, the parts given one by one, from plain synchronous code: `python examples/rlm_agent.py`.

The endpoint and key are passed in (here from OPENAI_BASE_URL and OPENAI_API_KEY); run_sync runs one
query in a loop of its own and closes the agent after it.
"""

import os
import sys

from orchestrator import LLMEndpoint, RLMAgent, RLMConfig, RunStatus

agent = RLMAgent(
    RLMConfig(root_model=os.environ.get("RLM_MODEL", "gpt-4o-mini"), max_depth=2, max_iterations=10),
    endpoint=LLMEndpoint(base_url=os.environ.get("OPENAI_BASE_URL") or None),
    api_key=os.environ.get("OPENAI_API_KEY", ""),
)
result = agent.run_sync(context={"a.md": "alpha", "b.md": "beta"}, query="Which file holds beta?")
print(result.status, result.answer)
sys.exit(0 if result.status is RunStatus.COMPLETED else 1)
