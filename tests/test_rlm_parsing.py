"""Reading model replies: code blocks and final answers in prose."""

from __future__ import annotations

from orchestrator.llm.loops import loop_end
from orchestrator.rlm.parsing import (
    ProseFinal,
    assigned_in,
    code_blocks,
    is_placeholder,
    names_in,
    own_text,
    prose_final,
    unquoted_final,
)


def test_repl_and_python_blocks_run_in_order() -> None:
    """```repl and ```python blocks are both code, in reply order; other fences are not."""
    reply = "Plan.\n```repl\nx = 1\n```\ntext\n```python\nprint(x)\n```\n```json\n{}\n```\n"
    assert code_blocks(reply) == ["x = 1\n", "print(x)\n"]


def test_empty_blocks_are_ignored_and_an_unterminated_last_block_runs() -> None:
    """A block with no code runs nothing; a last block whose closing fence never came runs."""
    assert code_blocks("```repl\n\n```") == []
    assert code_blocks("```repl\nx = 1\n") == ["x = 1\n"]


def test_final_in_prose() -> None:
    """FINAL(...) on its own line outside code ends the run with its text, quotes removed."""
    assert prose_final("I am done.\nFINAL(42 apples)") == ProseFinal(text="42 apples")
    assert prose_final('FINAL("quoted")') == ProseFinal(text="quoted")


def test_final_in_prose_stays_on_its_line() -> None:
    """Text after the FINAL line, parentheses and all, is not part of the answer."""
    assert prose_final("FINAL(42)\nSources used (see above)") == ProseFinal(text="42")


def test_final_var_in_prose() -> None:
    """FINAL_VAR(name) names a variable whose value the sandbox holds."""
    assert prose_final("FINAL_VAR(result)") == ProseFinal(variable="result")
    assert prose_final("FINAL_VAR('result')") == ProseFinal(variable="result")


def test_final_inside_code_is_not_prose() -> None:
    """FINAL written inside a code block is the code's business, not an answer in prose."""
    assert prose_final("```repl\nFINAL(x)\n```") is None
    assert prose_final("```repl\nx = 1\n```\ncall FINAL(x) when ready") is None


# ---- habits of a real small model (Qwen2.5-Coder-1.5B, recorded in tests/data/model_replies/) ----


def _recorded(name: str, index: int) -> str:
    """One reply the local model really wrote."""
    import json
    from pathlib import Path

    data = json.loads((Path(__file__).parent / "data" / "model_replies" / name).read_text())
    return str(data["replies"][index]["reply"])


def test_a_fence_with_its_language_on_the_next_line_runs() -> None:
    """ "```" then "repl" alone on the next line (as the model wrote it) is a repl block."""
    assert code_blocks("Let me look.\n```\nrepl\nprint(list_files())\n```\n") == ["print(list_files())\n"]
    assert code_blocks("```\npython\nx = 2\n```") == ["x = 2\n"]


def test_fences_indented_under_a_list_are_dedented() -> None:
    """Blocks the model indented under list items (IndentationError before) run dedented."""
    reply = _recorded("demo-temperature-0.8.json", 1)
    found = code_blocks(reply)
    assert found and all(not code.startswith((" ", "\t")) for code in found)
    for code in found:
        compile(code, "<block>", "exec")  # no IndentationError any more


def test_py_and_python3_tags_and_an_unclosed_last_block() -> None:
    """```py and ```python3 are code; a reply cut before its closing fence still runs its last block."""
    assert code_blocks("```py\na = 1\n```\n```python3\nb = 2\n```") == ["a = 1\n", "b = 2\n"]
    assert code_blocks("Here:\n```repl\nprint(read_file('a.txt'))") == ["print(read_file('a.txt'))\n"]


def test_bare_fences_run_only_when_they_hold_python_and_nothing_is_tagged() -> None:
    """A bare "```" block runs when it parses as Python and the reply has no tagged block."""
    assert code_blocks("```\nprint(1)\n```") == ["print(1)\n"]
    assert code_blocks("```\nThe answer is in the logs.\n```") == []
    assert code_blocks("```\nprint(1)\n```\n```repl\nprint(2)\n```") == ["print(2)\n"]
    assert code_blocks("```text\nprint(1)\n```") == [] and code_blocks("```bash\nls\n```") == []


def test_final_in_other_cases_and_inside_a_sentence() -> None:
    """Final(5) and final("x") count; a reply without code may end with FINAL inside a sentence."""
    assert prose_final("Final(5)") == ProseFinal(text="5")
    assert prose_final('final("the billing service")') == ProseFinal(text="the billing service")
    assert prose_final("So the answer is FINAL(billing), as the logs show.") == ProseFinal(variable="billing")
    assert prose_final("**FINAL(The billing service fails most.)**") == ProseFinal(
        text="The billing service fails most."
    )


def test_final_with_a_bare_name_is_the_variable() -> None:
    """FINAL(name) reads the variable, as FINAL_VAR does: it never prints the name as the answer."""
    assert prose_final("FINAL(answer_text)") == ProseFinal(variable="answer_text")
    assert prose_final("FINAL(42)") == ProseFinal(text="42")


def test_final_may_span_several_lines() -> None:
    """FINAL( ... ) over several lines is one answer, parentheses inside it kept."""
    reply = 'Done.\nFINAL("""The billing service (3 outages)\nfails most; restart its pool.""")'
    assert prose_final(reply) == ProseFinal(
        text="The billing service (3 outages)\nfails most; restart its pool."
    )


def test_a_fenced_placeholder_final_is_code_not_an_answer() -> None:
    """'```\\nFINAL(answer)\\n```' (the reply that was once printed as the answer) is code to run, whose
    runtime refuses an empty answer; it is never prose."""
    reply = "```\nFINAL(answer)\n```"
    assert prose_final(reply) is None and code_blocks(reply) == ["FINAL(answer)\n"]


def test_a_block_of_final_with_unquoted_prose_is_that_text() -> None:
    """'FINAL(6 files in the orders directory)' in a repl block is not Python (recorded, engine
    5488739): its text is the answer, as the official implementation reads FINAL in a reply. Python
    that parses, or a block with more than the one FINAL, is never read as text."""
    reply = _recorded("tier-5488739-facts-order-files.json", 1)
    (block,) = code_blocks(reply)
    assert unquoted_final(block) == "6 files in the orders directory"
    assert unquoted_final("FINAL(count)") is None and unquoted_final("FINAL('6 files')") is None
    assert (
        unquoted_final("x = 1\nFINAL(6 files)") is None and unquoted_final("FINAL(a b) + FINAL(c d)") is None
    )
    assert unquoted_final("Final(6 files)") == "6 files" and unquoted_final("FINAL( )") is None


def test_a_reply_that_loops_ends_after_one_turn_of_its_loop() -> None:
    """Recorded: the 1.5B model wrote one block and its explanation three times over (950 tokens,
    70 s). Read as it streams, the loop is plain once its last 200 characters have come three times:
    the kept reply holds the block and its explanation once, and the block is what runs."""
    reply = _recorded("tier-5f6ef02-facts-march-total.json", 1)
    seen = next(n for n in range(200, len(reply) + 1, 40) if loop_end(reply[:n]) is not None)
    kept = reply[: loop_end(reply[:seen])]
    assert seen < len(reply) / 2 and kept.count("```repl") == 1 and kept.endswith("in this file.\n\n")
    assert code_blocks(kept) == code_blocks(reply)[:1]


def test_text_that_only_looks_alike_is_no_loop() -> None:
    """Lines of a table, or a paragraph that recurs with other text between, are not a loop; a
    short loop (one character, one word) is."""
    table = "".join(f"2026-11-01T00:{m:02}:00Z WARN  gateway: card declined\n" for m in range(60))
    assert loop_end(table) is None
    paragraph = " ".join(f"word{n}" for n in range(50))  # 290 characters, no loop within
    assert loop_end(f"{paragraph} one {paragraph} two {paragraph}") is None
    assert loop_end(f"{paragraph} one {paragraph} one {paragraph}") is not None
    assert loop_end("y" * 500) == 1 and loop_end("ab" * 300) == 2


def test_a_reply_ends_where_it_writes_the_repls_output_itself() -> None:
    """Recorded: the 1.5B model wrote three blocks, then "Output of block 3:" with lines it made up
    and the feedback's own last line. The reply is its own up to that line: the three blocks run,
    nothing after them is kept; a reply without such a line (in code, a print of it) is whole."""
    reply = _recorded("tier-16b4262-sample-errors.json", 1)
    own = own_text(reply)
    assert "Output of block" not in own and own.endswith("```\n")
    assert code_blocks(own) == [
        f"lines = read_file(files[{n}]).splitlines()\nprint(len(lines), lines[:5])\n" for n in range(3)
    ]
    assert len(own) < len(reply) / 2
    assert (
        own_text("```repl\nprint('Output of block 1:')\n```\n")
        == "```repl\nprint('Output of block 1:')\n```\n"
    )


def test_a_reply_ends_at_a_fence_of_output_it_made_up() -> None:
    """Recorded: the 1.5B model wrote each block followed by a ```output fence of lines it made up
    ("3 ['logs/server.log', 'logs/another-log.txt', ...]" of a context with one log). The reply is its
    own up to the first such fence, the blocks before it."""
    reply = _recorded("tier-16b4262-facts-error-lines.json", 0)
    own = own_text(reply)
    assert "```output" in reply and "```output" not in own and "another-log" not in own
    assert code_blocks(own) == code_blocks(reply)[:3] and len(code_blocks(reply)) > 3


def test_a_placeholder_is_no_final_answer() -> None:
    """Recorded: after "end with FINAL(the answer)", the 1.5B model wrote `Final(the answer)`, which
    ended the run with "the answer". A placeholder is no answer, unquoted, quoted, in prose or as a
    variable's text; an answer that merely contains such words is one."""
    block = code_blocks(_recorded("tier-16b4262-facts-city.json", 4))[-1]
    assert block.strip() == "Final(the answer)" and unquoted_final(block) is None
    for text in ("FINAL(the answer)", 'FINAL("Your final answer here")', "FINAL(<answer>)", "FINAL(...)"):
        assert prose_final(text) is None, text
    assert is_placeholder("The answer.") and not is_placeholder("the answer is 42")
    assert is_placeholder("<...>") and not is_placeholder("[]") and not is_placeholder("0")
    assert prose_final("FINAL(the answer is Oslo)") == ProseFinal(text="the answer is Oslo")


def test_a_reply_ends_at_a_traceback_it_writes_as_code() -> None:
    """Recorded: the 1.5B model wrote its block again, then the last cell's traceback inside a ```repl
    fence, as if it were code. The reply is its own up to that fence."""
    reply = _recorded("tier-ff1ce16-sample-warn-day2.json", 1)
    own = own_text(reply)
    assert "Traceback" in reply and "Traceback" not in own
    assert code_blocks(own) == code_blocks(reply)[:1]


def test_the_names_a_block_uses() -> None:
    used = names_in("context = list_files('logs')\nFINAL(len(context))")
    assert used == {"context", "list_files", "FINAL", "len"}
    assert names_in("FINAL(") == set()


def test_code_inside_final_is_no_prose_answer() -> None:
    """Recorded: FINAL(answer["content"] = f"{len(files)} files ...") is a SyntaxError whose inside is
    code, not prose: it is no answer (the model sees the error), where FINAL(6 files in the orders
    directory) is the text."""
    block = code_blocks(_recorded("tier-ea33b73-facts-order-files.json", 0))[-1]
    assert block.startswith('FINAL(answer["content"] = ') and unquoted_final(block) is None
    assert unquoted_final("FINAL(6 files in the orders directory)") == "6 files in the orders directory"


def test_the_recorded_loop_over_a_str_is_seen_as_such() -> None:
    """The output the 1.5B model's `for line in read_file(path): print(line)` printed (recorded, cut
    to 1,500 characters) is output one character to a line."""
    import json
    from pathlib import Path

    from orchestrator.rlm.prompts import by_character

    data = json.loads(
        (Path(__file__).parent / "data" / "model_replies" / "tier-63900cc-sample-warn-day2.json").read_text()
    )
    printed = data["replies"][1]["cells"][0]["output"].split("\n", 1)[1]  # after its header line
    assert by_character(printed) and not by_character(data["replies"][0]["cells"][0]["output"])


def test_a_traceback_quoted_in_a_bare_fence_is_the_models_own_prose() -> None:
    """Only a ```repl / ```python fence opening on a traceback is made-up output: a strong model's
    "The error was: ```Traceback ...``` Fix: ```repl ...```" is its own reply, whole."""
    reply = (
        "The error was:\n```\nTraceback (most recent call last):\nKeyError: 'x'\n```\n"
        "Fix:\n```repl\nprint(1)\n```\n"
    )
    assert own_text(reply) == reply and code_blocks(reply) == ["print(1)\n"]


def test_ellipsis_is_a_placeholder_and_assignments_are_told_apart() -> None:
    """FINAL(...) run as code answers "Ellipsis"; the names a block assigns are told from those it reads."""
    assert is_placeholder("Ellipsis")
    assert assigned_in("context = list_files()\nFINAL(len(context))") == {"context"}
    assert assigned_in("FINAL(len(context))") == set()
