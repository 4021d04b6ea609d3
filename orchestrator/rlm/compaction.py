"""Compaction of a long root conversation, as the official RLM's `compaction=True` does. Pure.

When the root level's messages reach `compaction_threshold_pct` of the model's context window
(`context_window_tokens`, estimated at 4 characters a token, as the official code estimates without a
tokenizer), the model is asked to summarise its progress; the conversation then continues from the
system prompt, the query, that summary and a note saying so. Nothing is lost: the messages compacted
away and each summary go, in order, into the REPL variable `history` (a list of message lists and
`{"type": "summary", "content": ...}` entries), which the model is told about.
"""

from __future__ import annotations

from typing import Any

from ..config import RLMConfig
from ..llm.types import Message

CHARS_PER_TOKEN = 4

SUMMARY_REQUEST = (
    "Your conversation is about to be shortened. Summarise your progress so far: which steps are done "
    "and which remain; every concrete intermediate result (numbers, values, the names of the variables "
    "that hold them), exactly; and what your next step is. Be brief (one to three paragraphs), but keep "
    "every result and where you are in the task."
)

HISTORY_NOTE = (
    "If the conversation gets long it is compacted into a summary; everything said before (earlier "
    "messages and the summaries) is then in the REPL variable `history`, a list."
)


def estimate_tokens(messages: list[Message]) -> int:
    return sum(len(m.content) for m in messages) // CHARS_PER_TOKEN


def due(messages: list[Message], config: RLMConfig) -> bool:
    """Whether the conversation has reached the compaction threshold (never for fewer than 4 messages:
    the system prompt and the query are always kept)."""
    if not config.compaction or len(messages) < 4:
        return False
    return estimate_tokens(messages) >= config.compaction_threshold_pct * config.context_window_tokens


def continued(messages: list[Message], summary: str, count: int) -> list[Message]:
    """The conversation after compaction number `count`: the system prompt, the query, the summary."""
    return [
        *messages[:2],
        Message("assistant", summary),
        Message(
            "user",
            f"The conversation has been compacted {count} time(s): continue from the summary above, "
            "without redoing work already done. SHOW_VARS() lists the variables you have; `history` "
            "holds everything said before. Your next step:",
        ),
    ]


def entries(messages: list[Message], summary: str) -> list[Any]:
    """What one compaction adds to `history`: the messages it drops (after the query), then the summary."""
    return [
        [{"role": m.role, "content": m.content} for m in messages[2:]],
        {"type": "summary", "content": summary},
    ]
