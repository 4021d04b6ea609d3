"""Reading model replies: code blocks and final answers in prose."""

from __future__ import annotations

from orchestrator.rlm.parsing import ProseFinal, code_blocks, prose_final


def test_repl_and_python_blocks_run_in_order() -> None:
    """```repl and ```python blocks are both code, in reply order; other fences are not."""
    reply = "Plan.\n```repl\nx = 1\n```\ntext\n```python\nprint(x)\n```\n```json\n{}\n```\n"
    assert code_blocks(reply) == ["x = 1\n", "print(x)\n"]


def test_empty_and_unterminated_blocks_are_ignored() -> None:
    """A block with no code, or with no closing fence, runs nothing."""
    assert code_blocks("```repl\n\n```") == []
    assert code_blocks("```repl\nx = 1\n") == []


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
    assert prose_final("call FINAL(x) when ready") is None
