"""The sandbox layer on its own, no model: `python examples/sandbox_api.py`."""

import asyncio
from pathlib import Path

from orchestrator import ContextLimits, InMemoryContext, SandboxLimits, SandboxManager

HERE = Path(__file__).resolve().parent


async def main() -> None:
    async with SandboxManager() as manager:  # reaps orphans on entry and exit
        async with manager.open(
            HERE / "sample_context",
            include=["*.log"],
            runtime="runsc",
            limits=SandboxLimits(memory_bytes=256 << 20, cell_timeout_s=10),
            context_limits=ContextLimits(max_read_bytes=50 << 20),
        ) as sandbox:
            await sandbox.run("hits = grep('timeout')")
            result = await sandbox.run("print(len(hits)); FINAL(hits[0]['path'])")
            print(result.status, result.stdout.text.strip(), result.final, sandbox.usage.bytes_read)

        notes = InMemoryContext({"a.md": "alpha", "b.md": "beta"})
        async with manager.open(notes) as sandbox:
            print((await sandbox.run("print(sorted(context))")).stdout.text.strip())  # ['a.md', 'b.md']
        notes.close()


if __name__ == "__main__":
    asyncio.run(main())
