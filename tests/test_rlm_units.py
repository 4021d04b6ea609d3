"""Pure parts of the RLM engine: retries, the run budget, feedback to the model, error translation."""

from __future__ import annotations

import random

import httpx2 as httpx
import openai
import pytest

from orchestrator.config import RLMConfig
from orchestrator.errors import InvalidInputError, LLMError, RunLimitError
from orchestrator.llm.openai_provider import _translate
from orchestrator.llm.retry import RetryPolicy, is_retryable_status
from orchestrator.llm.types import Usage
from orchestrator.rlm.budget import RunBudget
from orchestrator.rlm.prompts import cell_feedback
from orchestrator.sandbox.results import CellError, CellResult, CellStatus, Output


def test_retry_delays_back_off_and_honour_retry_after() -> None:
    """Backoff doubles up to the cap with jitter in its upper half; Retry-After wins, capped."""
    policy = RetryPolicy(max_retries=5, base_delay_s=0.5, max_delay_s=4)
    rng = random.Random(3)
    for attempt, ceiling in [(1, 0.5), (2, 1.0), (3, 2.0), (4, 4.0), (5, 4.0)]:
        assert ceiling / 2 <= policy.delay(attempt, rng=rng) <= ceiling
    assert policy.delay(1, retry_after_s=2.5) == 2.5 and policy.delay(1, retry_after_s=60) == 4


@pytest.mark.parametrize(
    ("status", "retry"),
    [(429, True), (500, True), (503, True), (400, False), (401, False), (404, False), (None, False)],
)
def test_which_statuses_are_retried(status: int | None, retry: bool) -> None:
    """429 and 5xx are retried; a request the server refuses as wrong is not."""
    assert is_retryable_status(status) is retry


def _status_error(
    cls: type[openai.APIStatusError], status: int, headers: dict[str, str] | None = None
) -> Exception:
    request = httpx.Request("POST", "http://x/v1/chat/completions")
    return cls("boom", response=httpx.Response(status, headers=headers or {}, request=request), body=None)


def test_every_openai_error_becomes_an_llm_error() -> None:
    """Each openai exception class maps to LLMError, retryable exactly when a retry may help."""
    request = httpx.Request("POST", "http://x")
    cases = [
        (_status_error(openai.RateLimitError, 429, {"retry-after": "1.5"}), True),
        (_status_error(openai.InternalServerError, 502), True),
        (_status_error(openai.BadRequestError, 400), False),
        (_status_error(openai.AuthenticationError, 401), False),
        (openai.APITimeoutError(request=request), True),
        (openai.APIConnectionError(request=request), True),
        (openai.OpenAIError("other"), False),
    ]
    for exc, retryable in cases:
        translated = _translate(exc)  # type: ignore[arg-type]
        assert isinstance(translated, LLMError) and translated.retryable is retryable, exc
    assert _translate(cases[0][0]).retry_after_s == 1.5  # type: ignore[arg-type]


def test_budget_counts_subcalls_tokens_and_time() -> None:
    """Sub-calls past the limit, tokens past the limit and a passed deadline each stop the run."""
    now = [0.0]
    budget = RunBudget(RLMConfig(max_subcalls=2, max_tokens=100, deadline_s=10), clock=lambda: now[0])
    budget.take_subcall()
    budget.take_subcall()
    assert budget.exhausted() is None
    with pytest.raises(RunLimitError, match="2 sub-calls"):
        budget.take_subcall()
    assert budget.exhausted() == "max_subcalls"  # a refused sub-call ends the run at its next turn
    tokens = RunBudget(RLMConfig(max_tokens=100), clock=lambda: now[0])
    tokens.add(Usage(60, 50))
    assert tokens.exhausted() == "max_tokens"
    fresh = RunBudget(RLMConfig(deadline_s=10), clock=lambda: now[0])
    now[0] = 11.0
    assert fresh.exhausted() == "deadline"
    with pytest.raises(RunLimitError, match="deadline"):
        fresh.take_subcall()


def test_feedback_is_cut_with_a_note() -> None:
    """Output past the limit is cut and says so; errors and sandbox deaths are spelled out."""
    long = CellResult(CellStatus.OK, stdout=Output("x" * 500, 500))
    dead = CellResult(CellStatus.TIMEOUT, error=CellError("Timeout", "too slow"))
    text = cell_feedback([("a", long), ("b", dead)], 100)
    assert "x" * 100 + "\n[output truncated: 500 characters, showing 100]" in text
    assert "Timeout: too slow" in text and "variables are lost" in text


def test_config_is_validated() -> None:
    """Nonsense limits are refused when the config is made."""
    with pytest.raises(InvalidInputError):
        RLMConfig(max_depth=0)
    with pytest.raises(InvalidInputError):
        RLMConfig(max_concurrent_subcalls=0)
