"""An RLM over the sample context, from Python: `python examples/rlm_api.py`.

Needs a model endpoint: OPENAI_API_KEY, or OPENAI_BASE_URL for another OpenAI-compatible server (a
local one: `make local-model`). The library reads no environment: the settings are loaded here.
"""

import asyncio
import os
import sys
from pathlib import Path

from orchestrator import Orchestrator, RunStatus, load_settings
from orchestrator.rlm import FinalAnswer, IterationStarted

HERE = Path(__file__).resolve().parent


async def main() -> int:
    settings = load_settings(None, os.environ)  # $RLM_CONFIG if set, then OPENAI_API_KEY, OPENAI_BASE_URL
    async with Orchestrator(settings) as orch:  # one per process: sandboxes, models, records
        result = await orch.run(context=HERE / "sample_context", query="Which service logs most errors?")
        print(result.status, result.answer, f"({result.metadata.iterations} iterations)")

        async for event in orch.run_stream(context="alpha beta gamma", query="How many words are there?"):
            if isinstance(event, IterationStarted):
                print("iteration", event.index)
            elif isinstance(event, FinalAnswer):
                print("answer:", event.answer)
    return 0 if result.status is RunStatus.COMPLETED else 1


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
