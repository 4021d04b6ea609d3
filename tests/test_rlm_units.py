"""Pure parts of the RLM engine: retries, a retried stream's relay, the run budget, feedback to the model,
error translation."""

from __future__ import annotations

import random

import httpx2 as httpx
import openai
import pytest

from orchestrator.config import RLMConfig
from orchestrator.context.sources import ContextShape
from orchestrator.errors import InvalidInputError, LLMError, RunLimitError
from orchestrator.llm.calls import TextRelay, complete_with_retries
from orchestrator.llm.openai_provider import _translate
from orchestrator.llm.retry import RetryPolicy, is_retryable_status
from orchestrator.llm.types import Usage
from orchestrator.rlm import prompts
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


class _Screen:
    """A listener keeping what it would show, and everything it was given."""

    def __init__(self) -> None:
        self.shown = ""
        self.given: list[str] = []
        self.resets = 0

    def text(self, piece: str) -> None:
        self.given.append(piece)
        self.shown += piece

    def reset(self) -> None:
        self.resets += 1
        self.shown = ""


def _relay_attempts(relay: TextRelay, *attempts: list[str]) -> None:
    for pieces in attempts:
        relay.begin()
        for piece in pieces:
            relay.piece(piece)


def test_relay_passes_a_repeated_prefix_once() -> None:
    """A retry repeating the text shown, in other pieces, gives only what comes past it; no reset."""
    screen = _Screen()
    relay = TextRelay(screen.text, screen.reset)
    _relay_attempts(relay, ["ab", "", "c"], ["a", "bcd", "e"])
    relay.finish("abcde")
    assert screen.given == ["ab", "c", "d", "e"] and screen.resets == 0 and screen.shown == "abcde"


def test_relay_resets_when_a_retry_departs_or_ends_short() -> None:
    """A departing retry resets and gives its text so far; a shorter final reply resets and gives it whole."""
    departs = _Screen()
    relay = TextRelay(departs.text, departs.reset)
    _relay_attempts(relay, ["hello ", "there"], ["hello w", "orld"])
    relay.finish("hello world")
    assert (
        departs.shown == "hello world" and departs.resets == 1 and departs.given[-2:] == ["hello w", "orld"]
    )
    short = _Screen()
    relay = TextRelay(short.text, short.reset)
    _relay_attempts(relay, ["hello ", "there"], ["hel"])
    relay.finish("hel")
    assert short.shown == "hel" and short.resets == 1


def test_relay_keeps_what_a_failed_retry_did_not_reach() -> None:
    """A retry failing inside the shown text leaves it shown; the next one continues past it."""
    screen = _Screen()
    relay = TextRelay(screen.text, screen.reset)
    _relay_attempts(relay, ["abc"], ["ab"], ["abc", "defg"])
    relay.finish("abcdefg")
    assert screen.given == ["abc", "defg"] and screen.resets == 0


def test_relay_abandoned_resets_only_what_was_shown() -> None:
    """A call failing for good resets the listener if it was shown anything, and only then."""
    shown, empty = _Screen(), _Screen()
    relay = TextRelay(shown.text, shown.reset)
    _relay_attempts(relay, ["partial"])
    relay.abandon()
    silent = TextRelay(empty.text, empty.reset)
    _relay_attempts(silent, [""])
    silent.abandon()
    assert (shown.shown, shown.resets, empty.resets) == ("", 1, 0)


def test_relay_without_on_reset_never_repeats_a_prefix() -> None:
    """Without on_reset nothing is withdrawn: a repeat gives only the new part, a departure its full text."""
    same, other = _Screen(), _Screen()
    relay = TextRelay(same.text)
    _relay_attempts(relay, ["abc"], ["abcdef"])
    relay.finish("abcdef")
    assert same.shown == "abcdef"
    relay = TextRelay(other.text)
    _relay_attempts(relay, ["hello ", "there"], ["hello w"], [])
    relay.finish("")
    relay.abandon()
    assert other.shown == "hello therehello w"


class _CutStreams:
    """Attempts streaming replies in pieces of 3 characters, each cut (failing, retryable) at its cut."""

    def __init__(self, replies: list[str], cuts: list[int | None]) -> None:
        self.replies, self.cuts, self.tries = replies, cuts, 0

    async def __call__(self, emit: object) -> tuple[str, Usage]:
        reply, cut = self.replies[self.tries], self.cuts[self.tries]
        self.tries += 1
        assert callable(emit)
        end = len(reply) if cut is None else min(cut, len(reply))
        for start in range(0, end, 3):
            emit(reply[start : min(start + 3, end)])
        if cut is not None:
            raise LLMError("cut", retryable=True)
        return reply, Usage(1, 1)


async def test_retried_streams_always_leave_the_final_reply_shown() -> None:
    """Over random replies cut at random points, the listener ends holding the final reply, or nothing."""
    rng = random.Random(8)
    words = ["alpha ", "beta ", "gamma ", "delta ", "é🙂 "]

    async def no_wait(seconds: float) -> None:
        pass

    outcomes = {"answered": 0, "failed": 0, "reset": 0}
    for _ in range(400):
        replies = ["".join(rng.choices(words, k=rng.randint(0, 6))) for _ in range(rng.randint(1, 4))]
        cuts: list[int | None] = [rng.randint(0, len(r)) if rng.random() < 0.7 else None for r in replies]
        screen = _Screen()
        policy = RetryPolicy(max_retries=len(replies) - 1)
        try:
            text, _, attempts = await complete_with_retries(
                _CutStreams(replies, cuts), policy, screen.text, screen.reset, sleep=no_wait
            )
        except LLMError:
            assert screen.shown == "" and all(cut is not None for cut in cuts)
            outcomes["failed"] += 1
            continue
        assert screen.shown == text == replies[attempts - 1] and cuts[attempts - 1] is None
        outcomes["answered"] += 1
        if screen.resets:
            outcomes["reset"] += 1
        else:
            assert "".join(screen.given) == text  # each character of the reply given exactly once
    assert min(outcomes.values()) > 20, outcomes  # every path was taken


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


SHAPE = ContextShape("filesystem", 3, 900, {".log": 2, ".md": 1})
PATHS = ["docs/runbook.md", "logs/a.log", "logs/b.log"]


def _system(**kw: object) -> str:
    return prompts.system_prompt(SHAPE, depth=0, max_depth=1, max_output=1000, **kw)  # type: ignore[arg-type]


def test_a_mounted_directory_is_described_as_files_to_open() -> None:
    """Mounted, the prompt also says the files are the working directory and names one as it is
    listed; over the socket it does not mention /context. Both carry the same worked example."""
    mounted = _system(mounted=True, paths=PATHS)
    assert "Its files: docs/runbook.md, logs/a.log, logs/b.log\n" in mounted
    assert "open('docs/runbook.md')" in mounted and "working directory" in mounted
    served = _system(mounted=False, paths=PATHS)
    assert "Its files: docs/runbook.md" in served and "/context" not in served
    assert prompts.EXAMPLE in served and prompts.EXAMPLE in mounted


def test_a_reply_that_parrots_the_instructions_is_recognised() -> None:
    """Each sentence the echo check looks for is in the system prompt as sent (in whatever case the
    prompt writes it), so a reply that copies the prompt back is caught; the worked example alone is
    code to learn from, not an echo."""
    system = _system(paths=PATHS)
    for marker in prompts._ECHO_MARKERS:
        start = system.casefold().index(marker.casefold())
        assert prompts.echoes_instructions("Sure.\n" + system[start : start + len(marker)] + " ...")
    assert not prompts.echoes_instructions(prompts.EXAMPLE)


def test_the_worked_examples_answer_with_what_their_code_computed() -> None:
    """A small model copies the examples block for block and writes them in one reply, before any
    output came: each answers with a value its code computed (a count of the lines found, the line
    found), never a literal; a hit is read as the dict it is; no file is read by an index into a
    listing."""
    (count_query, count), (lookup_query, lookup), (file_query, in_file) = prompts.EXAMPLES
    assert "grep(" in count[1] and "len(hits)" in count[-1] and count[-1].startswith("FINAL(f")
    assert 'hits[0]["line"]' in lookup[-1] and lookup[-1].endswith("FINAL(line)\n")
    assert "files[0]" not in prompts.EXAMPLE and "read_file(files" not in prompts.EXAMPLE
    assert "invoices/2026-05.csv" in file_query and 'read_file("invoices/2026-05.csv")' in in_file[0]
    assert "len(unpaid)" in in_file[-1] and in_file[-1].startswith("unpaid = ")
    system = _system(paths=PATHS)
    assert f'"{count_query}"' in system and f'"{lookup_query}"' in system and prompts.EXAMPLE in system


def test_the_listing_names_the_first_paths_and_how_many_more() -> None:
    many = [f"f{i:03}.txt" for i in range(prompts.LISTED_PATHS)]
    text = prompts.listing(many, 1000)
    assert f"f{prompts.LISTED_PATHS - 1:03}.txt (and {1000 - prompts.LISTED_PATHS:,} more" in text
    assert prompts.listing(PATHS, 3).endswith("logs/b.log") and prompts.listing([], 0) == ""
    text_shape = ContextShape("text", 1, 14, {})
    assert "Its files" not in prompts.system_prompt(
        text_shape, depth=0, max_depth=1, max_output=9, paths=PATHS
    )


def test_a_value_taken_for_a_number_gets_a_hint_about_the_field() -> None:
    """Recorded from the 1.5B model: float(line.split(",")[1]) over "03000,Omar Ortiz,85" for the
    amount column, then the name in the error excluded, one at a time, until the iteration limit.
    A ValueError of float() or int() over text that is no number says to print the fields with their
    indexes; another ValueError gets no such hint."""
    import json
    from pathlib import Path

    recorded = Path(__file__).parent / "data" / "model_replies" / "tier-1cd4217-ex3-facts-march-total.json"
    output = json.loads(recorded.read_text())["replies"][0]["cells"][3]["output"]
    message = output.strip().splitlines()[-1].removeprefix("ValueError: ")
    assert message == "could not convert string to float: 'Omar Ortiz'"
    wrong_field = CellError("ValueError", message, output)
    told = cell_feedback([("a", CellResult(CellStatus.ERROR, error=wrong_field))], 2000)
    assert "\n['Omar Ortiz' is not a number: the code took a field that holds text. Print the" in told
    assert "print(list(enumerate(lines[0].split(',')))): if it is a header, it names the columns" in told
    assert "from the lines after it (lines[1:])" in told
    # After the output's cut: a long output before the traceback never cuts the hint off.
    loud = CellResult(CellStatus.ERROR, stdout=Output("x" * 5000 + "\n", 5001), error=wrong_field)
    cut = cell_feedback([("a", loud)], 2000)
    assert "[output truncated" in cut and "'Omar Ortiz' is not a number" in cut
    # Recorded too: a header's field, 'customer'; the first line's fields name each one's index.
    recorded = Path(__file__).parent / "data" / "model_replies" / "tier-4b23f9e-facts-march-total.json"
    output = json.loads(recorded.read_text())["replies"][0]["cells"][0]["output"]
    header = output.strip().splitlines()[-1].removeprefix("ValueError: ")
    assert header == "could not convert string to float: 'customer'"
    hint = prompts.not_a_number(CellError("ValueError", header)) or ""
    assert hint.startswith("'customer' is not a number") and "lines[0].split(',')" in hint
    # An empty field is a line to skip, not a wrong column.
    empty = prompts.not_a_number(CellError("ValueError", "could not convert string to float: ''"))
    assert empty == prompts.NOT_A_NUMBER_EMPTY
    as_int = CellError("ValueError", "invalid literal for int() with base 10: 'web'")
    assert (prompts.not_a_number(as_int) or "").startswith("'web' is not a number")
    other = CellError("ValueError", "too many values to unpack (expected 2)")
    assert prompts.not_a_number(other) is None and prompts.not_a_number(None) is None
    assert "not a number" not in cell_feedback([("a", CellResult(CellStatus.ERROR, error=other))], 2000)


def test_feedback_ends_with_what_to_write_next() -> None:
    """After an error the model is told to fix the code; after output, to end with FINAL when it
    answers the query (a small model otherwise states a found answer in prose)."""
    ok = CellResult(CellStatus.OK, stdout=Output("42\n", 3))
    failed = CellResult(CellStatus.ERROR, error=CellError("KeyError", "'x'", "KeyError: 'x'"))
    assert cell_feedback([("a", ok)], 100).endswith(prompts.NEXT_AFTER_OUTPUT)
    assert cell_feedback([("a", ok), ("b", failed)], 100).endswith(prompts.NEXT_AFTER_ERROR)


def test_the_feedback_says_which_reserved_names_were_restored() -> None:
    """Recorded: `context = list_files("orders/")`, then FINAL(len(context)) in the next reply counted
    the whole context. The feedback says `context` is the whole context again; the grammar follows
    the count of names."""
    one = cell_feedback([("a", CellResult(CellStatus.OK, restored=("context",)))], 1000)
    assert "`context` belongs to the REPL and was restored" in one
    assert "`context` is the whole context again" in one
    two = cell_feedback([("a", CellResult(CellStatus.OK, restored=("grep", "FINAL")))], 1000)
    assert "`grep`, `FINAL` belong to the REPL and were restored" in two and "whole context" not in two


def test_a_missing_file_in_a_mounted_context_gets_a_hint() -> None:
    """A small model opens 'context/...' or a file it never listed: the feedback says how paths are
    named, only where the files are mounted."""
    missing = CellResult(
        CellStatus.ERROR,
        error=CellError("FileNotFoundError", "[Errno 2] No such file", "FileNotFoundError: 'context'"),
    )
    assert prompts.MISSING_PATH in cell_feedback([("a", missing)], 1000, mounted=True)
    assert prompts.MISSING_PATH not in cell_feedback([("a", missing)], 1000, mounted=False)


def test_config_is_validated() -> None:
    """Nonsense limits are refused when the config is made."""
    with pytest.raises(InvalidInputError):
        RLMConfig(max_depth=0)
    with pytest.raises(InvalidInputError):
        RLMConfig(max_concurrent_subcalls=0)


def test_a_prompt_is_the_query_only_when_nothing_else_is_in_it() -> None:
    query = "How many files are in the orders directory?"
    assert prompts.is_the_query(" how many files are in the  orders directory ", query)
    assert prompts.is_the_query('"How many files are in the orders directory?"', query)
    assert not prompts.is_the_query(query + "\n\norders/a.csv\norders/b.csv", query)
    assert not prompts.is_the_query("", "") and not prompts.is_the_query("x", "")


def test_a_rewording_of_the_query_with_nothing_to_read_counts_as_the_query() -> None:
    """Recorded from the 1.5B model: it asks llm_query the query in other words, gets a guess back
    ("Hugo Rossi lives in Paris") and gives it as the answer. A prompt whose every content word is
    the query's is refused too; one that brings a word of its own, or text to read, is not."""
    city = "In which city does Hugo Rossi live, according to the staff list?"
    assert prompts.is_the_query("What is the city where Hugo Rossi lives, according to the staff list?", city)
    declined = "How many log lines, over all the log files, contain 'card declined'?"
    assert prompts.is_the_query("How many log lines contain 'card declined'?", declined)
    staff = "How many people are listed in people/staff.csv (rows after the header)?"
    assert not prompts.is_the_query("What is the content of people/staff.csv?", staff)
    assert not prompts.is_the_query(f"{city}\n\nname,city\nHugo Rossi,Oslo", city)
    assert not prompts.is_the_query("Summarise this: " + "lorem ipsum " * 20, "Summarise the notes")
    assert not prompts.is_the_query(city, "")
    assert not prompts.is_the_query("ping", "say ping") and prompts.is_the_query("say ping!", "Say ping")


def test_the_first_message_names_the_first_move_without_inviting_context_assignments() -> None:
    """Told to "look at the context's structure", the 1.5B model wrote `context = ...`: the first
    message says what to do as the example does, for a directory, and how to look at a text."""
    over_files = prompts.query_message("How many?", files=True)
    assert over_files.startswith("The query: How many?\n\n") and "as the examples do" in over_files
    assert "structure" not in over_files
    assert "print a part of `context`" in prompts.query_message("How many?", files=False)
    assert "names the file" not in over_files


def test_the_first_message_names_the_file_the_query_names_when_the_context_has_it() -> None:
    """Recorded from the 1.5B model: for "How many people are listed in people/staff.csv?" it grepped
    people/* for "staff" and answered -1 from the []. A file the query names, found in the context
    (as written, or the one path ending in it), is named with how to read it; a name the context has
    no file of, or more than one, is not."""
    paths = ["people/staff.csv", "logs/a.log", "old/logs/a.log", "orders/2026-03.csv"]
    query = "How many people are listed in people/staff.csv (rows after the header)?"
    assert prompts.named_file(query, paths) == "people/staff.csv"
    assert prompts.named_file("What is the sum in 2026-03.csv?", paths) == "orders/2026-03.csv"
    assert prompts.named_file("How many lines has a.log?", paths) is None  # two files end in it
    assert prompts.named_file("How many lines has logs/a.log?", paths) == "logs/a.log"
    assert prompts.named_file("What does notes.txt say?", paths) is None
    assert prompts.named_file("Rows in context/people/staff.csv?", paths) == "people/staff.csv"
    assert prompts.named_file("Is staff.csv people/staff.csv?", paths) == "people/staff.csv"  # one file
    assert prompts.named_file("Compare logs/a.log with 2026-03.csv", paths) is None  # two: read both
    told = prompts.query_message(query, named="people/staff.csv")
    assert told.endswith(
        "The query names the file people/staff.csv: read it, lines = "
        "read_file('people/staff.csv').splitlines(), and compute the answer from those lines, not from "
        "other files."
    )
    assert "names the file" not in prompts.query_message(query, files=False, named="people/staff.csv")


@pytest.mark.parametrize(
    "answer",
    [
        "0",
        "0 lines of logs/server.log contain the error code E-1729",  # recorded, from a loop over chars
        "No WARN lines found in logs/app-2026-11-02.log",  # recorded, with no file read
        "No log lines have the level ERROR",  # recorded
        "The vault access code written in the meeting notes is not found.",  # recorded
        "The runbook does not mention 'upstream 502'",  # recorded
        "there is no runbook provided in the given context",  # recorded
        "None.",
        "[]",  # recorded: FINAL_VAR(warn_lines) of an empty list
        "I could not find it",
        "-1 people are listed in people/staff.csv (rows after the header)",  # recorded: len([]) - 1
        "-1",
    ],
)
def test_an_answer_that_says_nothing_was_found_is_recognised(answer: str) -> None:
    assert prompts.finds_nothing(answer)


@pytest.mark.parametrize(
    "answer",
    ["60", "57 log lines contain 'card declined'", "No, it restarted twice", "0.5", "Oslo", "QX-8411",
     "Run the health check, then restart the gateway", "nonexistent? no: 5 files", "-1.5", "-12 degrees"],
)  # fmt: skip
def test_an_answer_that_found_something_is_not_taken_for_nothing(answer: str) -> None:
    assert not prompts.finds_nothing(answer)


@pytest.mark.parametrize(
    ("query", "move"),
    [
        ("What does the runbook say to do about an 'upstream 502'?", "grep(r'upstream 502')"),
        ("In which city does Hugo Rossi live, according to the staff list?", "grep(r'Hugo Rossi')"),
        ("How many lines of logs/server.log contain the error code E-1729?",
         "read_file('logs/server.log').splitlines()"),
        ("How many log lines have the level ERROR?", "grep(r'ERROR')"),
        ("How many files are in the orders directory?", ""),
    ],
)  # fmt: skip
def test_a_refused_llm_query_names_a_first_move_from_the_query(query: str, move: str) -> None:
    """Recorded: refused, the 1.5B model sent the same llm_query(the query) again and again. The
    refusal names code to start with, from the query's own words: the file it names, the text it
    quotes, a name or code in it; else the generic first move."""
    assert prompts.first_move(query) == move
    told = prompts.query_as_prompt(query)
    assert (f"for example, {move}" in told) if move else ("list_files(), then read_file()" in told)


def test_output_printed_one_character_to_a_line_is_shown_short_with_why() -> None:
    """Recorded: `for line in read_file(path): print(line)` printed 30,000 lines of one character; the
    first 4,000 characters of it cost the next reply 100 s to read. Such output is shown in 12 lines,
    with what went wrong; output of short lines of data is not."""
    text = "2026-11-02T00:00:00Z INFO  auth: handled request 5855\n" * 20
    spelled = "".join(f"{c}\n" for c in text)
    told = cell_feedback([("a", CellResult(CellStatus.OK, stdout=Output(spelled, len(spelled))))], 4000)
    assert "character by character" in told and ".splitlines()" in told and len(told) < 600
    digits = "".join(f"{n % 10}\n" for n in range(40)) + "".join(f"row {n}\n" for n in range(20))
    plain = cell_feedback([("a", CellResult(CellStatus.OK, stdout=Output(digits, len(digits))))], 4000)
    assert "character by character" not in plain


def test_a_quoted_first_move_greps_for_the_text_itself() -> None:
    """Quoted text goes into the suggested grep as itself, its regex characters escaped."""
    move = prompts.first_move("What does the runbook say about 'upstream 502 (bad gateway)'?")
    assert move == r"grep(r'upstream 502 \(bad gateway\)')"
