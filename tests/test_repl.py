"""The in-container REPL, run on the host: no Docker, no gRPC."""

from __future__ import annotations

from rlm_sandbox.capture import CappedStream
from rlm_sandbox.repl import Repl


def test_state_persists_between_cells() -> None:
    """A variable set in one cell is there in the next."""
    repl = Repl()
    repl.run("x = 20", 1000)
    assert repl.run("print(x + 1)", 1000).stdout.text() == "21\n"


def test_trailing_expression_is_shown() -> None:
    """As in a REPL, the value of a last bare expression is printed; None is not."""
    repl = Repl()
    assert repl.run("1 + 1", 1000).stdout.text() == "2\n"
    assert repl.run("None", 1000).stdout.text() == ""


def test_exception_comes_back_with_the_users_frames_only() -> None:
    """A raised exception is reported with a traceback naming the cell's lines, not the runtime's."""
    outcome = Repl().run("def f():\n    raise ValueError('boom')\nf()", 1000)
    assert outcome.error is not None
    assert outcome.error.type == "ValueError" and outcome.error.message == "boom"
    assert 'File "<cell 1>", line 2, in f' in outcome.error.traceback
    assert "repl.py" not in outcome.error.traceback


def test_syntax_error_is_a_cell_error() -> None:
    """Code that does not parse is an error of the cell, with its message."""
    outcome = Repl().run("def (:", 1000)
    assert outcome.error is not None and outcome.error.type == "SyntaxError"


def test_system_exit_ends_the_cell_not_the_runtime() -> None:
    """sys.exit() in user code is reported as an error and the namespace lives on."""
    repl = Repl()
    outcome = repl.run("y = 3\nimport sys\nsys.exit(4)", 1000)
    assert outcome.error is not None and outcome.error.type == "SystemExit"
    assert repl.run("print(y)", 1000).stdout.text() == "3\n"


def test_final_ends_with_a_value() -> None:
    """FINAL(x) makes x, as text, the cell's final answer."""
    assert Repl().run("FINAL(6 * 7)", 1000).final == "42"


def test_final_var_names_a_variable() -> None:
    """FINAL_VAR('name') takes the named variable's value and returns it as a str; an unknown name is
    no answer: it returns the official REPL's "Error: Variable ... not found" string, never raises."""
    repl = Repl()
    outcome = repl.run("result = 42\nback = FINAL_VAR('result')\nprint(repr(back))", 1000)
    assert outcome.final == "42" and outcome.stdout.text() == "'42'\n"
    outcome = repl.run("said = FINAL_VAR('missing')\nprint(said)", 1000)
    assert outcome.final is None and outcome.error is None
    assert outcome.stdout.text().startswith("Error: Variable 'missing' not found. Available variables: [")
    assert "'result'" in outcome.stdout.text() and "BEFORE calling FINAL_VAR" in outcome.stdout.text()
    empty = Repl().run("print(FINAL_VAR('x'))", 1000).stdout.text()
    assert "No variables have been created yet" in empty


def test_final_var_of_a_str_variable_itself_takes_its_value() -> None:
    """Recorded from the 1.5B model: `output = "The query did not find ..."` then FINAL_VAR(output),
    the variable, not its name. A str that names no variable but is a variable's own value is the
    answer, as a list or a number passed so is; a str that is no variable's value is still no answer,
    and a str naming a variable still means that variable."""
    import json
    from pathlib import Path

    recorded = Path(__file__).parent / "data" / "model_replies" / "tier-1cd4217-sample-log-files.json"
    reply = json.loads(recorded.read_text())["replies"][3]["reply"]
    (block,) = [part.split("\n", 1)[1] for part in reply.split("```")[1::2]]
    assert "FINAL_VAR(output)" in block
    assert Repl().run(block, 1000).final == "The query did not find any .log files in the context"
    repl = Repl()
    assert repl.run("output = 'three files'\nFINAL_VAR(output)", 1000).final == "three files"
    assert repl.run("FINAL_VAR('three files')", 1000).final is None  # a literal, not a variable's value
    assert repl.run("name = 'output'\nFINAL_VAR(name)", 1000).final == "three files"
    # A computed one-word answer is taken; a one-character str (shared by CPython) proves nothing.
    assert repl.run("city = '  Paris '.strip()\nFINAL_VAR(city)", 1000).final == "Paris"
    assert repl.run("mark = 'x'\nFINAL_VAR('x')", 1000).final is None
    given = Repl()
    given.protect("context", "a text context, the run's input")
    assert given.run("FINAL_VAR(context)", 1000).final is None  # the input is no answer


def test_answer_dict_ends_when_ready() -> None:
    """answer['ready'] = True ends with answer['content']; without ready there is no final answer."""
    repl = Repl()
    assert repl.run("answer['content'] = 'draft'", 1000).final is None
    assert repl.run("answer['ready'] = True", 1000).final == "draft"


def test_final_is_per_cell() -> None:
    """A FINAL, or a ready answer dict, from an earlier cell does not leak into the next one."""
    repl = Repl()
    repl.run("FINAL('x')", 1000)
    assert repl.run("pass", 1000).final is None
    assert repl.run("answer.update(content='y', ready=True)", 1000).final == "y"
    assert repl.run("pass", 1000).final is None


def test_hostile_values_cannot_break_the_runtime() -> None:
    """A raising __str__, lone surrogates, or a raising exception __str__ come back as text."""
    repl = Repl()
    repl.run("class Bad:\n    def __str__(self):\n        raise RuntimeError('no')", 1000)
    assert repl.run("FINAL(Bad())", 1000).final == "<unprintable Bad: str() raised RuntimeError>"
    assert repl.run("FINAL('a\\udcff')", 1000).final == "a?"
    outcome = repl.run(
        "class E(Exception):\n    def __str__(self):\n        raise ValueError\nraise E()", 1000
    )
    assert outcome.error is not None and outcome.error.type == "E"
    outcome = repl.run("raise ValueError('\\ud800')", 1000)
    assert outcome.error is not None and outcome.error.message == "?"


def test_large_final_and_traceback_are_capped_and_flagged() -> None:
    """The final answer and the traceback obey the output cap; a cut final answer says so."""
    outcome = Repl().run("FINAL('x' * 5000)", 100)
    assert outcome.final == "x" * 100 and outcome.final_truncated
    outcome = Repl().run("raise ValueError('y' * 50000)", 100)
    assert outcome.error is not None
    assert len(outcome.error.traceback.encode()) <= 100 and len(outcome.error.message) == 8192


def test_cells_do_not_inherit_the_runtimes_future_imports() -> None:
    """Annotations in user code are evaluated, not strings, whatever the runtime's own flags."""
    text = Repl().run("def f(x: int): pass\nprint(f.__annotations__)", 1000).stdout.text()
    assert text == "{'x': <class 'int'>}\n"


def test_reserved_names_are_restored() -> None:
    """Overwriting FINAL, an API function or `answer` lasts only until the end of the cell."""
    marker = object()
    repl = Repl({"read_file": marker})
    repl.run("FINAL = None\nread_file = 1\nanswer = 5", 1000)
    assert repl.namespace["read_file"] is marker
    assert repl.run("FINAL('ok')", 1000).final == "ok"
    assert repl.namespace["answer"] == {"content": "", "ready": False}


def test_show_vars_returns_the_variables_as_a_str() -> None:
    """SHOW_VARS() returns (never prints) the variables and their types in the official wording, the
    API functions and `answer` left out; with none, the official sentence."""
    repl = Repl({"llm_query": print})
    assert repl.run("print(SHOW_VARS())", 1000).stdout.text() == (
        "No variables created yet. Use ```repl``` blocks to create variables.\n"
    )
    outcome = repl.run("rows = [1]\nname = 'a'\nlisting = SHOW_VARS()", 1000)
    assert outcome.stdout.text() == ""
    assert repl.namespace["listing"] == "Available variables: {'rows': 'list', 'name': 'str'}"


def test_output_is_capped_and_counted() -> None:
    """Past the cap output is counted and dropped; a multi-byte character is never split."""
    outcome = Repl().run("print('é' * 100)", 11)
    assert outcome.stdout.text() == "é" * 5
    assert outcome.stdout.truncated and outcome.stdout.total_bytes == 201


def test_capped_stream_refuses_bytes() -> None:
    """Writing bytes to the captured stdout is a TypeError, as for a real text stream."""
    stream = CappedStream(10)
    try:
        stream.write(b"x")  # type: ignore[arg-type]
    except TypeError:
        return
    raise AssertionError("bytes were accepted")


def test_context_overwritten_by_the_code_is_restored_and_said() -> None:
    """`context = ...` (a small model's habit) lasts one cell: the context is back after it, and the
    cell's outcome names what was restored so the model can be told."""
    repl = Repl({"read_file": lambda path: "text"})
    original = ["the", "context"]
    repl.protect("context", original)
    outcome = repl.run("context = get = ['mine']\nprint(len(context))", 1000)
    assert outcome.stdout.text() == "1\n" and outcome.restored == ("context",)
    assert repl.namespace["context"] is original
    again = repl.run("read_file = None\ndel FINAL", 1000)
    assert set(again.restored) == {"read_file", "FINAL"}
    assert repl.run("print(context)", 1000).restored == ()


def test_final_of_the_answer_dict_means_its_content() -> None:
    """FINAL(answer) with the answer dict gives its content; with no content it is an error, never the
    dict's text printed as if it were the answer."""
    repl = Repl()
    empty = repl.run("FINAL(answer)", 1000)
    assert (
        empty.final is None
        and empty.error is not None
        and "answer['content'] is empty" in empty.error.message
    )
    done = repl.run("answer['content'] = 'billing'\nFINAL(answer)", 1000)
    assert done.final == "billing"


def test_the_given_context_is_no_final_answer() -> None:
    """FINAL(context) / FINAL_VAR("context") (a small model's habit, recorded in
    tests/data/model_replies/tier-b9adf16-sample-errors.json) would end the run with the context's
    repr as its answer: FINAL raises saying why, FINAL_VAR returns an "Error: ..." string; a value
    computed from the context is an answer as ever."""
    repl = Repl()
    repl.protect("context", ["alpha", "beta"])
    raised = repl.run("FINAL(context)", 1000)
    assert raised.final is None and raised.error is not None
    assert "`context` is what the run was given, not an answer" in raised.error.message
    said = repl.run("print(FINAL_VAR('context'))", 1000)
    assert said.final is None and said.stdout.text().startswith("Error: `context` is what the run was given")
    assert repl.run("FINAL(len(context))", 1000).final == "2"
    scalar = Repl()
    scalar.protect("context", 5)  # a JSON context of 5: CPython shares the int, so 5 may be the answer
    assert scalar.run("FINAL(2 + 3)", 1000).final == "5"


def test_final_of_more_than_one_value_says_it_takes_one() -> None:
    """Recorded from the 1.5B model: FINAL(answer["content"] == output, answer["ready"] == True),
    which Python answered with "_final_value() takes 2 positional arguments but 3 were given". The
    error names FINAL's own use; no answer is set, and one value is then taken."""
    import json
    from pathlib import Path

    recorded = Path(__file__).parent / "data" / "model_replies" / "tier-4b23f9e-sample-log-files.json"
    reply = json.loads(recorded.read_text())["replies"][4]["reply"]
    (block,) = [part.split("\n", 1)[1] for part in reply.split("```")[1::2]]
    assert 'FINAL(answer["content"] == output, answer["ready"] == True)' in block
    repl = Repl()
    result = repl.run(block, 1000)
    assert result.final is None and result.error is not None and result.error.type == "TypeError"
    assert result.error.message.startswith("FINAL(x) takes one value, the answer; 2 were given")
    assert "_final" not in result.error.message
    told = repl.run("FINAL_VAR(name='output')", 1000).error
    assert told is not None and told.message.startswith("FINAL_VAR(name) takes one value")
    assert repl.run("FINAL(output)", 1000).final == "No .log files in the context"
