"""A client of `rlm serve`, from Python: `RLM_KEY=rlm_... python examples/server_client.py`.

`orchestrator.client.RLMClient` is typed and async (`SyncRLMClient` blocks); errors come back as our
RLMError classes. RLM_ADDRESS names the server (default 127.0.0.1:50051).
"""

import asyncio
import os
from pathlib import Path

from orchestrator.client import RLMClient

HERE = Path(__file__).resolve().parent


async def main() -> None:
    address = os.environ.get("RLM_ADDRESS", "127.0.0.1:50051")
    async with RLMClient(address, os.environ["RLM_KEY"]) as client:
        print((await client.execute("print(len(context))", context="some text")).stdout.text)
        ctx = await client.upload_context(HERE / "sample_context")  # a directory, .tar(.gz) or bytes
        async for event in client.execute_stream("print(list_files()[:3])", context_id=ctx.context_id):
            print(event)  # OutputChunk(s), then the CellResult
        async with client.session(context_id=ctx.context_id) as s:
            await s.run("n = len(list_files())")
            print((await s.run("n")).stdout.text)
        run = await client.run(
            "Which service fails most often?",
            context_id=ctx.context_id,
            options={"max_iterations": 5},
            sandbox={"memory": "256m", "runtime": "runsc"},
        )
        print(run.status, run.answer, run.metadata.iterations, run.run_id)
        print((await client.list_runs(page_size=10)).runs[0].status)


if __name__ == "__main__":
    asyncio.run(main())
