"""The context store and sources on the host: no Docker."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pytest

from orchestrator.config import ContextLimits
from orchestrator.context.sources import FileSystemContext, InMemoryContext
from orchestrator.context.store import ContextStore
from orchestrator.errors import ContextLimitError, ContextPathError, InvalidInputError, PatternError


def _tree(root: Path) -> Path:
    (root / "src" / "pkg").mkdir(parents=True)
    (root / "docs").mkdir()
    (root / "src" / "main.py").write_text("import os\n\ndef main():\n    return os.getcwd()\n")
    (root / "src" / "pkg" / "util.py").write_text("def helper(x):\n    return x * 2  # TODO speed up\n")
    (root / "docs" / "guide.md").write_text("# Guide\nTODO: write the guide\n\nAll done.")
    (root / "notes.txt").write_text("todo later\nTODO now\n")
    outside = root.parent / "outside"
    outside.mkdir(exist_ok=True)
    (outside / "secret.txt").write_text("TODO secret")
    (root / "escape_dir").symlink_to(outside)
    (root / "escape_file").symlink_to(outside / "secret.txt")
    (root / "alias.py").symlink_to("src/main.py")
    return root


@pytest.fixture
def store(tmp_path: Path) -> ContextStore:
    return ContextStore(FileSystemContext(_tree(tmp_path / "ctx")))


def test_listing_stays_inside_the_root(store: ContextStore) -> None:
    """Directory symlinks are not followed and file symlinks leaving the root are not listed."""
    assert store.list_files() == ["alias.py", "docs/guide.md", "notes.txt", "src/main.py", "src/pkg/util.py"]
    assert store.list_files("src") == ["src/main.py", "src/pkg/util.py"]
    assert store.list_files(glob="*.py") == ["alias.py", "src/main.py", "src/pkg/util.py"]
    with pytest.raises(ContextPathError):
        store.list_files("../outside")


def test_a_files_own_path_lists_that_file(store: ContextStore) -> None:
    """list_files("config/services.ini") lists the file, as `ls FILE` does (recorded: the 1.5B model
    named the file it wanted, got [] and concluded it was missing); a path that is neither a file nor
    a directory lists nothing, and a prefix of a name is no directory."""
    assert store.list_files("src/main.py") == ["src/main.py"]
    assert store.list_files("./src/pkg/util.py") == ["src/pkg/util.py"]
    assert store.list_files("src/nothing.py") == [] and store.list_files("src/ma") == []


def test_a_name_found_deeper_down_or_a_pattern_lists_those_files(store: ContextStore) -> None:
    """Recorded from the 1.5B model: list_files("runbook.md") for docs/runbook.md and
    list_files("logs/*.log") for a glob, each answered [] and taken for "there is none". A name that
    is nothing at the root lists what bears it deeper down (a file or a directory); a directory
    holding a pattern, with no glob given, is that glob; what names nothing anywhere is still []."""
    assert store.list_files("guide.md") == ["docs/guide.md"]
    assert store.list_files("pkg") == ["src/pkg/util.py"] and store.list_files("pkg/util.py") == [
        "src/pkg/util.py"
    ]
    assert store.list_files("src/*.py") == ["src/main.py"] and store.list_files("*.md") == ["docs/guide.md"]
    assert store.list_files("src/*.py", glob="*.md") == []  # a glob given: the directory is a name
    assert store.list_files("uide.md") == [] and store.list_files("nothing/*.py") == []


def test_grep_is_smart_case(tmp_path: Path) -> None:
    """Recorded from the 1.5B model: grep(r"warn") for the WARN lines found none. A pattern with no
    capital letter matches in any case (ripgrep's --smart-case); one with a capital, or (?-i), is
    case-sensitive; escapes such as \\S and \\W are no capitals."""
    root = tmp_path / "ctx"
    root.mkdir()
    (root / "a.log").write_text("WARN disk\nwarn cpu\nINFO ok\nWarn mem\n")
    store = ContextStore(FileSystemContext(root))

    def lines(pattern: str) -> list[str]:
        return [m.line for m in store.grep(pattern)[0]]

    assert lines("warn") == ["WARN disk", "warn cpu", "Warn mem"]
    assert lines("WARN") == ["WARN disk"] and lines("Warn") == ["Warn mem"]
    assert lines(r"(?-i)warn") == ["warn cpu"]
    assert lines(r"^\S+ (disk|cpu)$") == ["WARN disk", "warn cpu"]


def test_a_leading_context_names_the_root_when_no_such_directory_exists(tmp_path: Path) -> None:
    """Recorded from the 1.5B model, told the files are the context: grep(glob="context/*"),
    read_file("context/logs/a.log"). With no directory named "context", that prefix names the root;
    where one exists, it is that directory."""
    store = ContextStore(FileSystemContext(_tree(tmp_path / "ctx")))
    assert store.read("context/docs/guide.md") == store.read("docs/guide.md")
    assert store.list_files("context/src") == store.list_files("src")
    assert store.list_files(glob="context/*.md") == store.list_files(glob="*.md") == ["docs/guide.md"]
    assert [m.path for m in store.grep("def", glob="context/src/*.py")[0]] == [
        m.path for m in store.grep("def", glob="src/*.py")[0]
    ]
    assert store.file_info("context/notes.txt")["path"] == "notes.txt"
    real = tmp_path / "real"
    (real / "context").mkdir(parents=True)
    (real / "context" / "a.txt").write_text("inside\n")
    (real / "b.txt").write_text("outside\n")
    with_dir = ContextStore(FileSystemContext(real))
    assert with_dir.list_files("context") == ["context/a.txt"]
    with pytest.raises(ContextPathError):
        with_dir.read("context/b.txt")
    named = tmp_path / "named"
    named.mkdir()
    (named / "context").write_text("a file named context\n")
    assert ContextStore(FileSystemContext(named)).read("context") == b"a file named context\n"


def test_include_and_exclude_narrow_the_context(tmp_path: Path) -> None:
    """Only included, non-excluded files exist for the API; an excluded one is refused by name."""
    source = FileSystemContext(
        _tree(tmp_path / "ctx"), include=["src/**/*.py", "*.md"], exclude=["src/pkg/**"]
    )
    narrowed = ContextStore(source)
    assert narrowed.list_files() == ["docs/guide.md", "src/main.py"]
    with pytest.raises(ContextPathError, match="no such file"):
        narrowed.read("src/pkg/util.py")
    assert narrowed.stats()["file_count"] == 2


@pytest.mark.parametrize(
    ("path", "why"),
    [
        ("/etc/passwd", "absolute"),
        ("../outside/secret.txt", "leaves"),
        ("escape_dir/secret.txt", "leaves"),
        ("escape_file", "leaves"),
        ("src", "not a regular file"),
        ("nope.txt", "no such file"),
        ("a\x00b", "NUL"),
    ],
)
def test_every_escape_is_one_error(store: ContextStore, path: str, why: str) -> None:
    """read and file_info refuse every escape form with ContextPathError naming the path."""
    for call in (store.read, store.file_info):
        with pytest.raises(ContextPathError, match=why) as refused:
            call(path)
        assert refused.value.path == path


def test_reads_count_and_the_budget_holds(tmp_path: Path) -> None:
    """Every read counts; past the run's budget a read is refused, and nothing past it is returned."""
    root = tmp_path / "ctx"
    root.mkdir()
    (root / "a.txt").write_bytes(b"x" * 600)
    store = ContextStore(FileSystemContext(root), ContextLimits(max_read_bytes=1000))
    assert store.read("a.txt") == b"x" * 600
    assert store.read("a.txt", offset=100, length=50) == b"x" * 50
    with pytest.raises(ContextLimitError, match="read budget"):
        store.read("a.txt")
    usage = store.usage
    # the refused read never touched the cache: it was refused on the file's size alone
    assert (usage.bytes_read, usage.files_read, usage.cache_hits, usage.cache_misses) == (650, 2, 1, 1)
    store.record_reads(300, 1)  # what the sandbox read through the mount
    assert store.remaining_read_bytes() == 50


def test_grep_results_count_against_the_budget(tmp_path: Path) -> None:
    """Lines grep returns are charged to the read budget; they stop at it, then grep is refused."""
    root = tmp_path / "ctx"
    root.mkdir()
    (root / "a.txt").write_text("match me\n" * 100)
    store = ContextStore(FileSystemContext(root), ContextLimits(max_read_bytes=100))
    matches, truncated = store.grep("match")
    assert truncated and len(matches) == 7  # 7 x (8 bytes of line + 5 of path) = 91 fits in 100
    assert store.usage.bytes_read == 91
    store.record_reads(9, 0)
    with pytest.raises(ContextLimitError, match="budget"):
        store.grep("match")
    assert len(ContextStore(FileSystemContext(root)).grep("match", max_matches=0)[0]) == 100


def test_large_files_are_read_by_range_and_grepped_in_pieces(tmp_path: Path) -> None:
    """A file over the one-read limit is read by range and grepped in pieces, never refused whole."""
    root = tmp_path / "ctx"
    root.mkdir()
    lines = [f"line {i} {'needle' if i % 250 == 0 else 'hay'}" for i in range(1, 2001)]
    (root / "big.log").write_text("\n".join(lines) + "\n")
    (root / "small.log").write_text("needle\n")
    store = ContextStore(FileSystemContext(root), ContextLimits(max_file_bytes=1000))
    with pytest.raises(ContextLimitError, match="offset and length"):
        store.read("big.log")
    assert store.read("big.log", 0, 11) == b"line 1 hay\n"
    assert store.read("big.log", 11, 11) == b"line 2 hay\n"
    with pytest.raises(ContextLimitError, match="offset and length"):
        store.read("big.log", 0, 1001)
    matches, truncated = store.grep("needle")
    assert [(m.path, m.line_number) for m in matches] == [
        *(("big.log", n) for n in range(250, 2001, 250)),
        ("small.log", 1),
    ] and not truncated
    assert all(m.line == lines[m.line_number - 1] for m in matches if m.path == "big.log")
    assert store.file_info("big.log")["lines"] == 2000


def test_a_large_file_is_grepped_with_bounded_memory(tmp_path: Path) -> None:
    """Grepping a file far larger than the piece size finds a match at its very end, line number exact."""
    from orchestrator.context import store as store_module

    root = tmp_path / "ctx"
    root.mkdir()
    with open(root / "huge.txt", "w") as fh:
        for _ in range(200):
            fh.write("x" * 99 + "\n" * 1)
        fh.write("the end\n")
    old = store_module.STREAM_CHUNK_BYTES
    store_module.STREAM_CHUNK_BYTES = 256  # many pieces, lines cut across them
    try:
        store = ContextStore(FileSystemContext(root), ContextLimits(max_file_bytes=512))
        matches, _ = store.grep("the end")
    finally:
        store_module.STREAM_CHUNK_BYTES = old
    assert [(m.line_number, m.line) for m in matches] == [(201, "the end")]


def test_unreadable_and_oddly_named_files_follow_one_rule(tmp_path: Path) -> None:
    """A file name that is not UTF-8 is listed, read and grepped under its shown name; a file this
    process cannot read is in no listing at all (as root, every file is readable)."""
    root = tmp_path / "ctx"
    root.mkdir()
    (root / os.fsdecode(b"caf\xe9.txt")).write_text("latin-1 name, needle\n")
    locked = root / "locked.txt"
    locked.write_text("needle in a locked file\n")
    locked.chmod(0)
    store = ContextStore(FileSystemContext(root))
    listed = store.list_files()
    assert "caf\\xe9.txt" in listed
    assert store.read("caf\\xe9.txt") == b"latin-1 name, needle\n"
    found = {m.path for m in store.grep("needle")[0]}
    assert "caf\\xe9.txt" in found
    if os.geteuid() == 0:
        assert "locked.txt" in listed and "locked.txt" in found
        assert store.read("locked.txt") == b"needle in a locked file\n"
    else:
        assert "locked.txt" not in listed and "locked.txt" not in found
    assert store.search_files("caf") == ["caf\\xe9.txt"]


def test_cache_stays_within_its_byte_budget(tmp_path: Path) -> None:
    """Reading a context many times larger than the cache keeps the cache at or under its size."""
    root = tmp_path / "ctx"
    root.mkdir()
    for i in range(60):
        (root / f"f{i:03}.bin").write_bytes(os.urandom(100_000))
    store = ContextStore(FileSystemContext(root), ContextLimits(cache_bytes=1_000_000))
    for i in range(60):
        assert len(store.read(f"f{i:03}.bin")) == 100_000
        assert store.cache_size() <= 1_000_000
    store.read("f059.bin")
    assert store.usage.cache_hits == 1 and store.usage.cache_misses == 60


GREP_PATTERNS = [
    r"TODO",
    r"todo|TODO",
    r"^\s+return",
    r"x \* 2",
    r"(?i)guide",
    r"\bos\b",
    r"^$",
    r"e$",
    r"\AAll",
    r"(?<=def )\w+",
    r"done\.\Z",
    r"\s",
    r"[^a-z]$",
    r"o.*o",
    r"^#",
    r"\n",
]


@pytest.mark.parametrize("pattern", GREP_PATTERNS)
def test_grep_agrees_with_re(store: ContextStore, pattern: str) -> None:
    """grep finds exactly the (path, line number, line) triples Python's re finds line by line, in
    any case when the pattern has no capital letter outside its escapes (smart case)."""
    flags = 0 if re.search(r"[A-Z]", re.sub(r"\\.", "", pattern)) else re.IGNORECASE
    expected = []
    for path in store.list_files():
        with os.fdopen(store.source.open(path), "rb") as fh:
            text = fh.read().decode("utf-8", "replace")
        lines = text.split("\n")[: -1 if text.endswith("\n") else None] if text else []
        expected += [(path, n, line) for n, line in enumerate(lines, 1) if re.search(pattern, line, flags)]
    matches, truncated = store.grep(pattern)
    assert [(m.path, m.line_number, m.line) for m in matches] == expected and not truncated


@pytest.mark.parametrize(
    ("pattern", "text"),
    [
        (r"[^a].", "- a\n b\n"),
        (r"\s*", "x\n\nab\n"),
        (r"a[^z]*b", "a\nab\n"),
        (r"^\W[^a]", "\n-- \n-"),
        (r"x", "x"),
        (r"^$", "\n\n"),
        (r"b\s", "ab\nb \n"),
    ],
)
def test_grep_line_semantics_on_tricky_texts(tmp_path: Path, pattern: str, text: str) -> None:
    """Matches that could run across newlines never hide or invent a line (cases found by fuzzing)."""
    (tmp_path / "t.txt").write_text(text)
    store = ContextStore(FileSystemContext(tmp_path))
    lines = text.split("\n")[: -1 if text.endswith("\n") else None]
    expected = [n for n, line in enumerate(lines, 1) if re.search(pattern, line)]
    assert [m.line_number for m in store.grep(pattern)[0]] == expected


def test_grep_fuzz_agrees_with_re(tmp_path: Path) -> None:
    """Random small patterns over random texts: grep and per-line re.search agree on every line."""
    import random

    rng = random.Random(1)
    atoms = ["a", "b", " ", ".", r"\s", r"\W", "[^a]", "[ab]", "^", "$", r"\b", "-"]
    for case in range(300):
        text = "".join(rng.choice("ab -\n") for _ in range(rng.randint(0, 30)))
        pattern = "".join(
            rng.choice(atoms) + rng.choice(["", "*", "+", "?"]) for _ in range(rng.randint(1, 4))
        )
        try:
            re.compile(pattern)
        except re.error:
            continue
        (tmp_path / "t.txt").write_text(text)
        store = ContextStore(FileSystemContext(tmp_path))
        lines = text.split("\n")[: -1 if text.endswith("\n") else None] if text else []
        expected = [n for n, line in enumerate(lines, 1) if re.search(pattern, line)]
        assert [m.line_number for m in store.grep(pattern)[0]] == expected, (case, pattern, text)


def test_grep_caps_and_filters(store: ContextStore) -> None:
    """max_matches cuts the list and says so; a glob narrows the files searched."""
    matches, truncated = store.grep("TODO|todo", max_matches=2)
    assert len(matches) == 2 and truncated
    matches, _ = store.grep("TODO", glob="*.md")
    assert [m.path for m in matches] == ["docs/guide.md"]


def test_bad_and_runaway_patterns_are_pattern_errors(store: ContextStore, tmp_path: Path) -> None:
    """An invalid regex is refused; a catastrophic one is stopped by the time limit, not the host."""
    with pytest.raises(PatternError, match="not a valid"):
        store.grep("(unclosed")
    (tmp_path / "slow").mkdir()
    (tmp_path / "slow" / "x.txt").write_text("x" * 5000 + "\n")
    slow = ContextStore(FileSystemContext(tmp_path / "slow"), ContextLimits(regex_timeout_s=0.2))
    with pytest.raises(PatternError, match="ran past its"):
        slow.grep(r"(x+x+)+y")
    assert slow.search_files(r"x\.txt") == ["x.txt"]


@pytest.mark.parametrize(
    ("value", "kind", "files"),
    [
        ("the whole text", "text", ["context.txt"]),
        (["one", "two", "three"], "list", ["item_0000.txt", "item_0001.txt", "item_0002.txt"]),
        ({"notes/a.md": "A", "b.txt": "B"}, "mapping", ["b.txt", "notes/a.md"]),
    ],
)
def test_in_memory_contexts_are_served_as_files(value: object, kind: str, files: list[str]) -> None:
    """A str, a list and a dict become files with the same API; the shape records how to rebuild them."""
    source = InMemoryContext(value)  # type: ignore[arg-type]
    store = ContextStore(source)
    try:
        assert store.list_files() == files
        assert source.shape().kind == kind
        first_name, first_path = source.shape().entries[0]
        assert store.read(first_path).decode() == (
            value[first_name] if isinstance(value, dict) else value[0] if isinstance(value, list) else value
        )
        root = source.root()
    finally:
        source.close()
    assert not os.path.exists(root)


@pytest.mark.parametrize("bad", [{"../x": "y"}, {"/abs": "y"}, {"a": {1, 2}}, object(), [1.0, float("nan")]])
def test_bad_in_memory_values_are_refused(bad: object) -> None:
    """Names that escape and values that are not JSON are refused with a clear error."""
    with pytest.raises(InvalidInputError):
        InMemoryContext(bad)  # type: ignore[arg-type]


@pytest.mark.parametrize("value", [{"a": 1}, 42, ["ok", 3], [{"role": "user"}], None, {"n": {"m": [1.5]}}])
def test_any_other_json_value_is_one_json_file(value: object) -> None:
    """What is not text, a list of text or a mapping of names to text is one file, context.json, holding
    the value as JSON (the sandbox decodes it as `context`), as the official REPL loads such contexts."""
    source = InMemoryContext(value)  # type: ignore[arg-type]
    try:
        store = ContextStore(source)
        assert source.shape().kind == "json" and source.shape().entries == (("context", "context.json"),)
        assert store.list_files() == ["context.json"] and json.loads(store.read("context.json")) == value
    finally:
        source.close()


def test_indexing_a_large_tree_reports_progress(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Indexing calls on_progress every PROGRESS_EVERY files, so a person sees a big context go by."""
    from orchestrator.context import sources

    monkeypatch.setattr(sources, "PROGRESS_EVERY", 10)
    root = tmp_path / "many"
    for d in range(5):
        (root / f"d{d}").mkdir(parents=True)
        for f in range(5):
            (root / f"d{d}" / f"f{f}.txt").write_text("x")
    seen: list[int] = []
    context = FileSystemContext(root, on_progress=seen.append)
    assert len(context.index()) == 25 and seen == [10, 20]


def test_a_name_that_names_no_file_leaves_a_note_of_near_names(store: ContextStore) -> None:
    """Recorded from the 1.5B model: list_files("staff") and grep(..., glob="staff/*") for
    people/staff.csv, each [] until the run stalled. A directory or glob that names no file leaves a
    note naming the files that bear its last plain word, else what the root holds."""
    assert store.list_files("guide") == [] and store.grep("x", glob="guide/*")[0] == []
    notes = store.take_notes()
    near = "names no file of the context; the files whose names hold 'guide': docs/guide.md"
    assert [n.text for n in notes] == [f"list_files('guide') {near}", f"grep's glob 'guide/*' {near}"]
    # list_files' [] is what an answer beside it counts; grep over no file read no line it meant.
    assert [n.lines_unseen for n in notes] == [False, True]
    assert store.list_files("staff") == []
    (note,) = store.take_notes()
    assert note.text.endswith("its top level holds alias.py, docs/, notes.txt, src/")
    assert store.list_files("guide/*") == []  # a wildcard directory, taken as a glob, selects none
    (note,) = store.take_notes()
    assert note.text.startswith("list_files('guide/*') names no file") and "docs/guide.md" in note.text
    assert store.list_files("g") == []  # one character: too many names hold it to say which
    (note,) = store.take_notes()
    assert "its top level holds" in note.text
    store.list_files("src")
    store.list_files(glob="*.nothing")  # a filter that selects nothing is an answer, not a misnaming
    store.grep("def", glob="src/*")
    assert store.take_notes() == []


@pytest.mark.parametrize(
    ("pattern", "capital"),
    [("warn", False), ("WARN", True), (r"\S+\W", False), (r"\p{Lu}x", False), (r"(?P<Name>a)", False),
     (r"(?i:A)b", True), ("Hugo Rossi", True), (r"e-\d+", False), (r"E-\d+", True),
     (r"(?<=WARN).*", True), (r"(?<!x)warn", False)],
)  # fmt: skip
def test_both_sides_agree_on_smart_case(pattern: str, capital: bool) -> None:
    """The host's grep and the sandbox's grep over held text decide smart case alike (each side keeps
    its own copy of the rule; the packages never import each other)."""
    from rlm_sandbox.text_grep import has_capital

    from orchestrator.context.store import _has_capital

    assert _has_capital(pattern) is capital and has_capital(pattern) is capital


def test_a_grep_that_finds_no_line_where_file_names_match_leaves_a_note(store: ContextStore) -> None:
    """Recorded from the 1.5B model: grep(r"\\.log") to count the .log files, grep(r"2026-03.csv")
    to find that file, each 0 lines. The store notes that file names match (taken once); a grep that
    finds lines, or whose pattern names no file, leaves none. One file named is the file the model
    meant to find: the note says how to read it (the model otherwise greps for its name again)."""
    assert store.grep(r"\.md$")[0] == []
    notes = [note.text for note in store.take_notes()]
    assert len(notes) == 1 and "the file docs/guide.md matches" in notes[0]
    assert "read_file('docs/guide.md').splitlines()" in notes[0]
    assert store.take_notes() == []
    assert store.grep(r"\.py$")[0] == []
    (note,) = store.take_notes()
    assert note.lines_unseen  # the lines the model meant are in files it did not read
    assert "3 files match it (alias.py, src/main.py, src/pkg/util.py)" in note.text
    assert "search_files('\\\\.py$') lists the files whose names match" in note.text
    assert "read_file" not in note.text
    store.grep("def")
    store.grep("no such text anywhere")
    assert store.take_notes() == []
