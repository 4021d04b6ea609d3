"""The questions of OOLONG-Pairs: templates per coarse label, and real TREC data in its published format.

Each template's label is decided by its meaning, never by a word that names it: "What is the capital of
France ?" is a location and "What is the population of France ?" a numeric value, though both open with
"What is the". `template_questions()` gives every question the templates make, with its label (a
question never carries two labels: a test checks it). `read_trec(path)` reads the TREC
question-classification files (`LOC:city Where is Glasgow ?`, one a line; coarse codes ABBR, DESC,
ENTY, HUM, LOC, NUM).
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable
from pathlib import Path

ABBREVIATION = "abbreviation"
DESCRIPTION = "description and abstract concept"
ENTITY = "entity"
HUMAN = "human being"
LOCATION = "location"
NUMERIC = "numeric value"
# The order the paper's prompt names them in.
LABELS = (DESCRIPTION, ENTITY, HUMAN, NUMERIC, LOCATION, ABBREVIATION)
TREC_CODES = {
    "ABBR": ABBREVIATION,
    "DESC": DESCRIPTION,
    "ENTY": ENTITY,
    "HUM": HUMAN,
    "LOC": LOCATION,
    "NUM": NUMERIC,
}

_FILL = {
    "abbr": ["NASA", "UNICEF", "NATO", "OPEC", "CPR", "DNA", "FBI", "RSVP", "UFO", "HTML", "GMT", "scuba"],
    "org": ["World Health Organization", "European Union", "United Nations", "Federal Reserve", "Red Cross"],
    "concept": ["democracy", "entropy", "irony", "inflation", "photosynthesis", "karma", "nostalgia"],
    "device": ["refrigerator", "compass", "microwave oven", "jet engine", "thermostat", "barometer"],
    "country": ["France", "Japan", "Brazil", "Kenya", "Canada", "Norway", "Peru", "Egypt", "India"],
    "city": ["Glasgow", "Tbilisi", "Porto", "Kyoto", "Perth", "Quito", "Dakar", "Lyon", "Bergen"],
    "person": ["Mozart", "Marie Curie", "Gandhi", "Picasso", "Einstein", "Frida Kahlo", "Tolstoy"],
    "painting": ["the Mona Lisa", "Guernica", "The Starry Night", "The Scream", "Water Lilies"],
    "book": ["Moby Dick", "War and Peace", "Don Quixote", "Dracula", "Frankenstein", "Ulysses"],
    "invention": ["telephone", "light bulb", "printing press", "steam engine", "telescope", "radio"],
    "landmark": ["the Eiffel Tower", "Mount Fuji", "the Taj Mahal", "Machu Picchu", "Big Ben"],
    "river": ["Nile", "Amazon", "Danube", "Mekong", "Volga", "Zambezi"],
    "animal": ["an elephant", "a blue whale", "a cheetah", "a penguin", "a giraffe", "an ostrich"],
    "animals": ["bats", "cats", "geese", "bees", "whales", "wolves"],
    "thing": ["bones", "keys", "strings", "teeth", "squares", "players"],
    "holder": ["the human body", "a piano", "a violin", "a shark's mouth", "a chessboard", "a rugby team"],
    "event": ["the French Revolution", "the moon landing", "the Great Fire of London", "the Gold Rush"],
}

# Each template's slots are filled from _FILL; every combination is a question of that label.
TEMPLATES: dict[str, tuple[str, ...]] = {
    ABBREVIATION: (
        "What does {abbr} stand for ?",
        "What is the full form of {abbr} ?",
        "What do the letters {abbr} mean ?",
        "What is the abbreviation of the {org} ?",
    ),
    DESCRIPTION: (
        "What is the definition of {concept} ?",
        "How does a {device} work ?",
        "Why do {animals} migrate ?",
        "What is meant by {concept} ?",
        "What were the causes of {event} ?",
        "Why is {landmark} famous ?",
    ),
    ENTITY: (
        "What language is spoken in {country} ?",
        "What currency is used in {country} ?",
        "What do {animals} eat ?",
        "What instrument did {person} play ?",
        "What is the national flower of {country} ?",
        "What sport is most popular in {country} ?",
    ),
    HUMAN: (
        "Who painted {painting} ?",
        "Who wrote {book} ?",
        "Who invented the {invention} ?",
        "Who was the first president of {country} ?",
        "Who built {landmark} ?",
        "Which scientist studied {concept} first ?",
    ),
    LOCATION: (
        "Where is {city} ?",
        "What is the capital of {country} ?",
        "Where was {person} born ?",
        "In which country is {landmark} ?",
        "Where does the {river} river begin ?",
        "Which continent is {country} on ?",
    ),
    NUMERIC: (
        "How many {thing} are in {holder} ?",
        "How tall is {landmark} ?",
        "When was {person} born ?",
        "What year did {event} begin ?",
        "What is the population of {country} ?",
        "How long is the {river} river ?",
        "How much does {animal} weigh ?",
    ),
}


def _fill(template: str) -> Iterable[str]:
    names = [part.split("}")[0] for part in template.split("{")[1:]]
    for values in itertools.product(*(_FILL[n] for n in names)):
        yield template.format(**dict(zip(names, values, strict=True)))


def template_questions() -> dict[str, list[str]]:
    """Every question the templates make, by label (each list sorted, so the order is fixed)."""
    return {label: sorted({q for t in templates for q in _fill(t)}) for label, templates in TEMPLATES.items()}


class QuestionFileError(ValueError):
    """A --questions file that is not TREC's `LABEL:fine question` format; the message names the line."""


def read_trec(path: Path) -> dict[str, list[str]]:
    """TREC question-classification lines (`LOC:city Where is Glasgow ?`) by coarse label.

    Blank lines are skipped; any other line must start with a coarse code (ABBR, DESC, ENTY, HUM, LOC,
    NUM), a colon, a fine label, a space and the question. Files of the original release are Latin-1
    (a few bytes are not UTF-8), so bytes that are not UTF-8 are read as Latin-1. A question listed
    under two labels keeps the first. Duplicates are dropped.
    """
    raw = path.read_bytes()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        text = raw.decode("latin-1")
    found: dict[str, list[str]] = {label: [] for label in LABELS}
    seen: set[str] = set()
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        head, _, question = line.strip().partition(" ")
        code, colon, fine = head.partition(":")
        if not colon or not fine or code not in TREC_CODES or not question.strip():
            raise QuestionFileError(
                f"{path}:{number}: not a TREC line (LABEL:fine question, LABEL one of "
                f"{', '.join(TREC_CODES)}): {line[:80]!r}"
            )
        question = " ".join(question.split())
        if question in seen:
            continue
        seen.add(question)
        found[TREC_CODES[code]].append(question)
    if not any(found.values()):
        raise QuestionFileError(f"{path}: no questions")
    return found
