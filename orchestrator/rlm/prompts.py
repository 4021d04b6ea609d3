"""The messages the root model sees. Pure: the context's shape goes in, never its content."""

from __future__ import annotations

import re
from collections.abc import Sequence

from ..context.sources import ContextShape
from ..sandbox.results import CellError, CellResult, CellStatus

SYSTEM = """You answer a query about a context that is too large to read at once. You cannot see it.
You work in a Python REPL that holds it: write code in ```repl blocks, and you will see what the code
prints. Variables persist between blocks and turns.

The context: {shape}{listing}{where}

In the REPL:
- `context`: {context_help}
- list_files(directory="", glob=""), read_file(path, offset=0, length=None) -> str (its .splitlines()
  are the file's lines), grep(pattern, glob=None, max_matches=1000) -> [{{path, line_number, line}}]
  (the lines that match, in the files the glob names; or in a text or list of lines passed instead of
  the glob), search_files(regex), get_file_info(path),
  get_stats(), get_files_in_directory(dir) (also spelled listFiles, readFile, ...).
- llm_query(prompt, model=None) -> str asks a language model that sees only your prompt, never the
  context: put the text it must read in the prompt (it can read about {sub_chars:,} characters at
  once); llm_query_batched(prompts) -> list[str] asks many at once, in parallel: prefer it for many
  chunks. {recursion}
- print() what you need to see; long output is cut to {max_output:,} characters.
- SHOW_VARS() lists your variables.

Explore the context with code, delegate reading large parts to llm_query, and build the answer in
variables. When done, end with FINAL(answer) or FINAL_VAR(variable_name) in a ```repl block (or set
answer["content"] and answer["ready"] = True). Do not guess: check with code first, and when the code
finds nothing, look again another way before you answer. `context` and the functions above are the
REPL's: keep your own values in other names (they are restored after each block).

Three examples, for OTHER questions over a directory of invoices: find the lines with code (grep
across files, or read the one file a query names), compute the answer from them in a variable, print
it, and answer with it. Write your own code for your query and your context; do not copy these:
{example}
"""

# Where a mounted context's files are: the REPL's working directory, so the model's own open() works.
MOUNTED = (
    "\nThey are also the REPL's working directory (read-only, at /context): open(path) with a path as "
    'listed, as in open({example!r}), reads one too (no "context/" before it).'
)

# How many of a directory context's paths the system prompt names (its structure, never its content).
LISTED_PATHS = 40

# The worked examples in the system prompt (the official implementation's prompt carries examples too).
# A small model copies them block for block, renaming little, and writes all its blocks in one reply
# before it has seen any output; so each shows the moves right most often, and answers with a value the
# code computed, never a literal written before the output came. Recorded from the 1.5B model: with a
# count of files as the example's answer, it answered a count of lines with a count of files; with a
# look at `read_file(files[0])`'s first lines, it read files[4] of three, or answered from those first
# lines (a city, a port, a total) instead of searching; with a lookup that filtered a file's lines
# (a list of str) beside a count over grep's hits (dicts), it split a hit as if it were its line.
# Measured with the real-model tier: a plain-Python example for mounted contexts (os.walk, glob, open)
# scored 0 of 7 against 2 to 3 of 12 for the API's (a small model then lists the top directory only).
# Without the third (the one file a query names, read whole), the model grepped for that file's name
# or read logs[4] of three for it; at the same engine the tier scored 6 of 12 without it, 9 with.
EXAMPLES = (
    (
        "How many lines of the invoices mention a refund?",
        (
            'files = list_files("invoices")\nprint(len(files), files[:5])\n',
            'hits = grep(r"refund", glob="invoices/*")\nprint(len(hits), hits[:3])\n',
            'FINAL(f"{len(hits)} lines of the invoices mention a refund")\n',
        ),
    ),
    (
        "What is the due date of invoice 1042?",
        (
            'hits = grep(r"1042", glob="invoices/*")\nprint(len(hits), hits[:3])\n',
            'line = hits[0]["line"]\nprint(line)\nFINAL(line)\n',
        ),
    ),
    (
        "How many invoices in invoices/2026-05.csv are unpaid?",
        (
            'lines = read_file("invoices/2026-05.csv").splitlines()\nprint(len(lines), lines[:3])\n',
            'unpaid = [line for line in lines[1:] if "unpaid" in line]\nprint(len(unpaid))\n'
            'FINAL(f"{len(unpaid)} invoices in invoices/2026-05.csv are unpaid")\n',
        ),
    ),
)
EXAMPLE = "\n\n".join(
    f'"{query}"\n' + "\n".join(f"```repl\n{block}```" for block in blocks) for query, blocks in EXAMPLES
)

RLM_HELP = (
    "rlm_query(prompt) / rlm_query_batched(prompts) start a sub-agent with its own REPL over the same "
    "context, for sub-questions that need exploring ({levels} more level(s) allowed)."
)
NO_RLM_HELP = "rlm_query(prompt) behaves like llm_query here (no deeper levels)."

FORCE_FINAL = (
    "You have used every iteration. Answer the query now with what you know, as FINAL(...) of the answer "
    "on a line of its own."
)
FORCE_FINAL_STALLED = (
    "Your last replies did nothing new, so the run ends here. Answer the query now with what the "
    "output so far shows, as FINAL(...) of the answer on a line of its own."
)
NO_CODE = "Your reply had no ```repl block and no FINAL(...). Continue with code, or end with FINAL(answer)."
REPEATED = (
    "Your reply is the same as an earlier one, whose code already ran: running it again shows nothing "
    "new. Try a different approach, or end with FINAL(answer) if you know it."
)
# The last line of the feedback after code ran: what to write next (a small model otherwise answers
# an error with advice in prose, or states a found answer without FINAL).
NEXT_AFTER_ERROR = "Fix the code in a new ```repl block (the error says what went wrong)."
NEXT_AFTER_OUTPUT = (
    "If this output answers the query, end with FINAL(...) of the answer in a ```repl block. If it found "
    "nothing, such as a count of 0 or an empty list, the code likely looked in the wrong place or for "
    "the wrong text: print a few lines of the files, then try again."
)
# A mounted context's missing file: a small model names files it never listed, or "context/...".
_MISSING_PATH = ("FileNotFoundError", "NotADirectoryError", "IsADirectoryError")
MISSING_PATH = (
    "the context's files are named from its root, the working directory: 'logs/a.log' or "
    "'/context/logs/a.log', never 'context/logs/a.log'; only the files listed in the instructions "
    "(or by list_files()) exist"
)
# llm_query(the query itself), or the query reworded: a small model's habit; the model asked sees no
# context, so its reply is a guess (recorded: "you can use the ls command...", "Hugo Rossi lives in
# Paris"), which the model then gives as its answer.
QUERY_AS_PROMPT = (
    "this prompt is the query itself (or the query reworded) with nothing to read, and the model "
    "llm_query asks never sees the context: read the files with code{hint}, and pass llm_query the "
    "text it must read with your question"
)
# Recorded: refused, the 1.5B model sends the same llm_query again and again; a first move named from
# the query's own words gets it reading.
_QUOTED = re.compile("'([^']{2,60})'|\"([^\"]{2,60})\"")
_PATH = re.compile(r"(?<![\w/.-])[\w.-]*\w(?:/[\w.-]+)*\.[A-Za-z][A-Za-z0-9]{0,4}\b")  # "logs/a.log", "a.csv"
_NAME = re.compile(r"(?<!^)(?<![.?!] )\b([A-Z][\w-]*(?:\s+[A-Z][\w-]*)*)")


def first_move(query: str) -> str:
    """Code to start with for a query, from its own words: read the file it names, else grep for
    the text it quotes, or for a name or code in it (a capitalised word past the first, "E-1729");
    "" when the query has none."""
    path = _PATH.search(query)
    if path:
        return f"read_file({path.group(0)!r}).splitlines()"
    quoted = _QUOTED.search(query)
    if quoted:
        literal = re.sub(r"([.^$*+?{}\[\]\\|()])", r"\\\1", quoted.group(1) or quoted.group(2))
        quote = '"' if "'" in literal else "'"
        return f"grep(r{quote}{literal}{quote})"  # the quoted text as itself: "(bad gateway)" is no group
    coded = re.search(r"\b[A-Za-z]+-\d[\w-]*\b|\b[A-Z]{2,}\b", query)
    named = _NAME.search(query.strip())
    word = coded.group(0) if coded else named.group(1) if named else ""
    return f"grep(r{word!r})" if word else ""


def query_as_prompt(query: str) -> str:
    """Why llm_query(the query) was refused, with a first move for this query."""
    move = first_move(query)
    hint = f"here, for example, {move}" if move else "list_files(), then read_file() of the files it is about"
    return QUERY_AS_PROMPT.format(hint=f" ({hint})")


# Words that carry no content of their own, for telling a rewording of the query from a prompt that
# brings something to read.
_FILLER = frozenset(
    "a an the of in on at to for by with from into about as is are was were be been do does did can "
    "could would what which who whom whose where when how many much there this that these those it "
    "its and or please me tell find give say says according".split()
)


def _content_words(text: str) -> set[str]:
    words = re.findall(r"[a-z0-9]+", text.lower())
    return {w[:-1] if len(w) > 3 and w.endswith("s") else w for w in words if w not in _FILLER}


def is_the_query(prompt: str, query: str) -> bool:
    """True when a sub-call's prompt is the level's query (case, spacing, quotes and end punctuation
    aside), or a rewording of it that brings nothing to read: three or more words of content, every
    one of them the query's (plurals and words such as "the", "what", "according" aside), and no
    longer than the query and a line. A prompt of one or two words ("ping" for "say ping") is no
    rewording."""

    def norm(text: str) -> str:
        return " ".join(text.lower().split()).strip(" \"'?.!:")

    if not query.strip():
        return False
    if norm(prompt) == norm(query):
        return True
    words = _content_words(prompt)
    return len(words) >= 3 and len(prompt) <= len(query) + 80 and words <= _content_words(query)


ECHOED = (
    "[that block is the example from the instructions, not code for this context: it was not run. Write "
    "code for the query and context you were given.]"
)


# Sentences of the system prompt a model may parrot back; a reply holding one echoes its instructions.
_ECHO_MARKERS = (
    "You work in a Python REPL that holds it",
    "examples, for other questions over",
    "Explore the context with code, delegate reading large parts to llm_query",
)


def echoes_instructions(reply: str) -> bool:
    """True when the reply repeats the system prompt's own text instead of working on the query."""
    folded = reply.casefold()
    return any(marker.casefold() in folded for marker in _ECHO_MARKERS)


def describe(shape: ContextShape) -> str:
    kinds = ", ".join(f"{ext} {n:,}" for ext, n in list(shape.files_by_extension.items())[:10])
    if shape.kind == "text":
        return f"one text of {shape.total_bytes:,} bytes (`context` is that str)"
    if shape.kind == "list":
        return f"a list of {shape.file_count:,} texts, {shape.total_bytes:,} bytes in all"
    if shape.kind == "mapping":
        return f"a dict of {shape.file_count:,} named texts, {shape.total_bytes:,} bytes in all"
    if shape.kind == "json":
        return f"a JSON value of {shape.total_bytes:,} bytes (`context` is the decoded value)"
    return f"a directory of {shape.file_count:,} files, {shape.total_bytes:,} bytes ({kinds})"


def context_help(shape: ContextShape) -> str:
    return {
        "text": "the whole text, a str",
        "list": "a list of str",
        "mapping": "a dict of name -> str",
        "json": "the value itself (numbers, lists and dicts, as decoded from JSON)",
    }.get(shape.kind, "the files, read-only: context[path] is a file's text, context.files their paths")


def listing(paths: Sequence[str], total: int) -> str:
    """The first paths of a directory context, for the system prompt."""
    if not paths:
        return ""
    shown = ", ".join(paths[:LISTED_PATHS])
    more = total - min(len(paths), LISTED_PATHS)
    return f"\nIts files: {shown}" + (
        f" (and {more:,} more: list_files() names them all)" if more > 0 else ""
    )


def system_prompt(
    shape: ContextShape,
    *,
    depth: int,
    max_depth: int,
    max_output: int,
    query_note: str = "",
    mounted: bool = False,
    paths: Sequence[str] = (),
) -> str:
    """`mounted`: the sandbox has the context's files at /context (its working directory), so the
    model may read them with plain Python; else only through the REPL's functions. `paths`: the
    first of a directory context's files, named in the prompt (list_files() order)."""
    levels = max_depth - depth - 1
    recursion = RLM_HELP.format(levels=levels) if levels > 0 else NO_RLM_HELP
    files = shape.kind == "filesystem"
    on_disk = mounted and files
    return SYSTEM.format(
        shape=describe(shape),
        listing=listing(paths, shape.file_count) if files else "",
        where=MOUNTED.format(example=paths[0] if paths else "notes/a.txt") if on_disk else "",
        context_help=context_help(shape),
        sub_chars=400_000,
        recursion=recursion,
        max_output=max_output,
        example=EXAMPLE,
    ) + (f"\n{query_note}\n" if query_note else "")


def named_file(query: str, paths: Sequence[str]) -> str | None:
    """The context's file the query names ("in people/staff.csv", "app-2026-11-02.log"): one of
    `paths` that is the path the query writes (a leading "context/" aside), or the only one ending in
    it; None when the query names no such file, or more than one (the model is to read them all)."""
    named: set[str] = set()
    for found in _PATH.finditer(query):
        name = found.group(0)
        if name not in paths:
            name = name.removeprefix("context/")
        if name in paths:
            named.add(name)
            continue
        deeper = [p for p in paths if p.endswith("/" + name)]
        if len(deeper) == 1:
            named.add(deeper[0])
    return named.pop() if len(named) == 1 else None


def query_message(query: str, *, files: bool = True, named: str | None = None) -> str:
    """The first user message. `files`: the context is a directory (else a text, list or dict);
    `named`: the context's file the query names (see named_file), whose reading is the first move."""
    # Recorded: told to "look at the context's structure", the 1.5B model wrote `context = ...` (and
    # then answered from the REPL's restored `context`); the first move is said as the examples'.
    first = (
        "Start with code, as the examples do: find the lines the query is about (grep, or read the file "
        "it names), and compute the answer from them."
        if files
        else "Start with code: print a part of `context` to see its format."
    )
    if files and named is not None:
        # Recorded from the 1.5B model: for "How many people are listed in people/staff.csv?" it
        # grepped people/* for "staff", for the sum of a column in orders/2026-03.csv it grepped for
        # "2026-03.csv", and took the [] for an answer (-1 people, 0 files).
        # Recorded too: it read that log file, then counted grep(r"WARN", glob="logs/*") over all three.
        first += (
            f" The query names the file {named}: read it, lines = read_file({named!r}).splitlines(), "
            "and compute the answer from those lines, not from other files."
        )
    return f"The query: {query}\n\n{first}"


# An answer given before any code read the context's files (recorded from the 1.5B model: "The runbook
# does not mention 'upstream 502'" after listing the files, FINAL(len(context)) for a count of lines).
UNREAD_ANSWER = (
    "That answer is not taken yet: no code has read the context's files so far (it only listed their "
    "names), so it is a guess. Read or grep the files the query is about, print what they hold, then "
    "give FINAL again."
)


# An answer that says nothing was found (recorded from the 1.5B model: "0 lines of logs/server.log
# contain the error code E-1729" from a loop over read_file()'s characters, "No WARN lines found in
# logs/app-2026-11-02.log" with no file read, "The vault access code ... is not found.").
EMPTY_ANSWER = (
    "That answer is not taken yet: it says nothing was found, and code that looks in the wrong place "
    "or for the wrong text finds nothing too. Print a few lines of what the query is about (its files, "
    "or `context`) to see how they are written, check your code against them (a text is one str: "
    ".splitlines() gives its lines), then give FINAL again (the same answer, if it stands)."
)
# An answer given in the reply whose grep found no line where file names match (the store's note is
# shown under that block's output): the answer was written with the code, before the output came.
UNSEEN_ANSWER = (
    "That answer is not taken yet: it was written before the output above came, and a grep there found "
    "no line (see the note under its output). Do what the note says, print what you find, compute the "
    "answer from it, then give FINAL again (the same answer, if it stands)."
)
_NONE_ANSWERS = frozenset(("0", "[]", "{}", "()", "none", "null", "nothing", "n/a", "unknown", "not found"))
_NOTHING_FOUND = re.compile(
    r"^\W*(?:(?:0|zero|none|nothing)\b(?![.,]?\d)|no\s+\w)"  # "0 lines ...", "No WARN lines ..."
    r"|^\s*-1\b(?![.,]?\d)"  # str.find's "not found"; recorded: "-1 people are listed in ..." (len([]) - 1)
    r"|\bnot\s+(?:be\s+)?(?:found|mentioned|listed|present|given)\b"
    r"|\b(?:no|zero)\s+(?:\S+\s+){0,4}?(?:found|match(?:es|ed)?|mentions?)\b"
    r"|\bthere\s+(?:is|are|were|was)\s+no\b"
    r"|\b(?:does|do|did)\s*(?:not|n't)\s+(?:mention|contain|say|list|include|have)\b"
    r"|\b(?:cannot|can't|could\s*(?:not|n't)|unable\s+to)\s+(?:be\s+)?(?:find|found|determine|locate)",
    re.IGNORECASE,
)


def finds_nothing(answer: str) -> bool:
    """True when an answer says that nothing was found: a count of 0 ("0", "0 lines ..."), -1, "none",
    "not found", "no ... found", "there is no ...", "does not mention", "could not determine". A
    yes/no answer ("No, it restarted twice") and a figure that starts with 0 ("0.5") are answers.
    A true 0 or -1 (a net change) is sent back once too, to be given again: the check is for small
    models, and off by default (RLMConfig.check_empty_answers)."""
    text = answer.strip()
    return text.casefold().strip(" .!") in _NONE_ANSWERS or bool(_NOTHING_FOUND.search(text))


# Each block's output is told under this header. A small model goes on to write it itself (recorded:
# the 1.5B model wrote three blocks, then "Output of block 3:" with lines it made up, and the feedback's
# own last line; or a "```output" fence after each block, with made-up lines): the reply ends there
# (parsing.own_text), and run.stop_at_imagined_output sends the endpoint IMAGINED_OUTPUT as stop
# sequences, so that such a reply is not generated at all.
OUTPUT_HEADER = "Output of block"
IMAGINED_OUTPUT = ("\n" + OUTPUT_HEADER, "```output")


def stale_answer(names: Sequence[str]) -> str:
    """Why an answer computed from a name the REPL restored is sent back."""
    quoted = ", ".join(f"`{name}`" for name in names)
    return (
        f"That answer is not taken yet: it was computed from {quoted}, which an earlier block assigned "
        "and the REPL restored after that block, so the code used the REPL's value, not yours "
        "(`context` is the whole context). Compute it again under a name of your own, such as `files`, "
        "then give FINAL again."
    )


def restored_note(names: Sequence[str]) -> str:
    """What the model hears when a block assigned the REPL's own names (recorded from the 1.5B model:
    `context = list_files("orders/")` in one reply, `FINAL(len(context))` in the next, which counted
    the whole context's files): the names are the REPL's again, and its values are gone."""
    quoted = ", ".join(f"`{name}`" for name in names)
    one = len(names) == 1
    what = (
        "`context` is the whole context again, not the value your block gave it; "
        if "context" in names
        else ""
    )
    return (
        f"{quoted} {'belongs' if one else 'belong'} to the REPL and {'was' if one else 'were'} "
        f"restored after this block: {what}keep your own values in other variables, such as `files`"
    )


# Output printed one character to a line: a loop over a str (recorded from the 1.5B model: `for line
# in read_file(path): print(line)`, 30,000 lines of one character, whose first 4,000 characters cost
# the next reply 100 s to read). Shown short, with what went wrong.
CHARACTER_LINES_SHOWN = 12
BY_CHARACTER = (
    "[... {lines:,} lines of one character each, {shown} shown: the loop went over a str character by "
    "character; read_file() returns one str, and its .splitlines() are the lines]"
)


def by_character(output: str) -> bool:
    """True when output of 50 lines or more is nearly all lines of at most one character."""
    lines = output.split("\n")
    return len(lines) >= 50 and sum(len(line) <= 1 for line in lines) >= 0.9 * len(lines)


# A value taken for a number that is not one (recorded from the 1.5B model: float(line.split(",")[1])
# over "03000,Omar Ortiz,85" for the amount column; it then excluded each name the error gave, one
# by one, until the iteration limit): the field is likely the wrong one.
_NOT_A_NUMBER = re.compile(
    r"could not convert string to float: (?P<a>'.*'|\".*\")"
    r"|invalid literal for int\(\) with base \d+: (?P<b>.*)"
)
# The example's code names its own variables (`lines`, `line` in a loop): told to print
# list(enumerate(line.split(','))) the model wrote it where no `line` was defined. Told to skip the
# header when the value was a header's field ('customer'), it kept the same wrong index over
# lines[1:]: the header is what names each field's index, so the hint prints it.
NOT_A_NUMBER = (
    "{value} is not a number: the code took a field that holds text. Print the first line's fields "
    "with their indexes, print(list(enumerate(lines[0].split(',')))): if it is a header, it names the "
    "columns; take the field of the column the query names, from the lines after it (lines[1:])"
)
NOT_A_NUMBER_EMPTY = (
    "'' is not a number: an empty line or field. Skip those (for line in lines if line.strip()), "
    "or print the lines around it to see why it is empty"
)


def not_a_number(error: CellError | None) -> str | None:
    """The hint for a ValueError of float() or int() over text that is not a number, else None."""
    if error is None or error.type != "ValueError":
        return None
    found = _NOT_A_NUMBER.search(error.message)
    if found is None:
        return None
    value = (found.group("a") or found.group("b")).strip()
    if value in ("''", '""'):
        return NOT_A_NUMBER_EMPTY
    return NOT_A_NUMBER.format(value=value)


def cell_feedback(
    code_results: list[tuple[str, CellResult]],
    max_chars: int,
    *,
    mounted: bool = False,
    next_step: str | None = None,
    notes: Sequence[Sequence[str]] = (),
) -> str:
    """What the model sees after its code ran: each block's output, cut to the limit with a note,
    then what to do next (`next_step`, else the usual line). `mounted`: the context's files are the
    working directory (a missing path gets a hint). `notes`: per block, what the context store
    noticed about its calls (a grep that found no line where file names match)."""
    parts = []
    for index, (_code, result) in enumerate(code_results, 1):
        body = result.stdout.text
        if by_character(body):
            shown = "\n".join(body.split("\n")[:CHARACTER_LINES_SHOWN])
            body = f"{shown}\n{BY_CHARACTER.format(lines=body.count(chr(10)), shown=CHARACTER_LINES_SHOWN)}"
        if result.stderr.text:
            body += ("\n" if body else "") + result.stderr.text
        if result.error is not None:
            body += ("\n" if body else "") + (
                result.error.traceback or f"{result.error.type}: {result.error.message}"
            )
        if len(body) > max_chars:
            body = body[:max_chars] + f"\n[output truncated: {len(body):,} characters, showing {max_chars:,}]"
        # What the engine adds comes after the cut, so no output, however long, cuts it off.
        added: list[str] = []
        if result.status not in (CellStatus.OK, CellStatus.ERROR):
            added.append(
                f"the sandbox ended: {result.status.value}; its variables are lost, a fresh one is ready"
            )
        if result.stdout.truncated:
            added.append(f"output cut by the sandbox: {result.stdout.total_bytes:,} bytes were written")
        if result.restored:
            added.append(restored_note(result.restored))
        if (
            result.error is not None
            and result.error.type == "NameError"
            and "'Final'" in result.error.message
        ):
            added.append("the function is FINAL(...), in capitals")
        if mounted and result.error is not None and result.error.type in _MISSING_PATH:
            added.append(MISSING_PATH)
        hint = not_a_number(result.error)
        if hint is not None:
            added.append(hint)
        added.extend(notes[index - 1] if index <= len(notes) else ())
        body += "".join(f"\n[{line}]" for line in added)
        parts.append(f"{OUTPUT_HEADER} {index}:\n{body or '(no output)'}")
    failed = any(
        result.error is not None or result.status is not CellStatus.OK for _c, result in code_results
    )
    if next_step is None:
        next_step = NEXT_AFTER_ERROR if failed else NEXT_AFTER_OUTPUT
    return "\n\n".join([*parts, next_step])
