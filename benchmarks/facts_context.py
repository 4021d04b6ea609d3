"""Generate a small context with planted facts, for the real-model tier (benchmarks/model_tier.py).

    python benchmarks/facts_context.py DIR [--seed 11]

Deterministic for a seed: meeting notes, a staff list, monthly order files, a config file and a
server log (22 files, about 60 KB). `generate` returns the planted facts, so each question's answer
is known without reading the files back.
"""

from __future__ import annotations

import argparse
import json
import random
from dataclasses import asdict, dataclass
from pathlib import Path

FIRST = (
    "Ada Ben Cleo Dario Eva Farid Greta Hugo Ines Jonas Kira Luca Mina Nils Omar Pia Rosa Sami Tara Ugo"
).split()
LAST = "Berg Costa Dahl Egger Fabre Gomez Horn Ivers Jansen Klein Lund Moreau Novak Ortiz Prado Rossi".split()
CITIES = "Oslo Porto Ghent Graz Turin Lyon Basel Krakow Tallinn Bergen Aarhus Malmo".split()
TEAMS = "platform billing search data mobile web support".split()
TOPICS = "roadmap hiring budget latency migration onboarding incidents pricing security backups".split()
WORDS = (
    "the team agreed to review the plan next week and to keep the current scope while the open items "
    "are tracked in the usual board with owners and dates for each of them"
).split()


@dataclass(frozen=True, slots=True)
class Facts:
    access_code: str  # in one meeting note, nowhere else
    access_note: str
    person: str  # a staff member with a unique last name
    person_city: str
    order_files: int
    march_total: int  # sum of the amounts in orders/2026-03.csv
    cache_port: int  # config/services.ini, [cache] section
    error_code: str
    error_lines: int  # lines of logs/server.log holding error_code
    staff_count: int


def _prose(rng: random.Random, sentences: int) -> str:
    out = []
    for _ in range(sentences):
        words = [rng.choice(WORDS) for _ in range(rng.randint(8, 16))]
        out.append(" ".join(words).capitalize() + ".")
    return " ".join(out)


def generate(root: Path, seed: int = 11) -> Facts:
    rng = random.Random(seed)
    root.mkdir(parents=True, exist_ok=True)

    # notes/: twelve meeting notes, one holding the access code
    code = f"QX-{rng.randint(1000, 9999)}"
    secret_note = rng.randint(1, 12)
    for i in range(1, 13):
        topic = rng.choice(TOPICS)
        body = [f"# Meeting {i:02d}: {topic}", "", _prose(rng, 6), "", _prose(rng, 5)]
        if i == secret_note:
            body.insert(3, f"The vault access code is {code}; keep it out of chat.")
        path = root / "notes" / f"meeting-{i:02d}.md"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("\n".join(body) + "\n")

    # people/staff.csv: unique names; the person asked about has a last name used once
    names = {f"{f} {last}" for f in FIRST for last in LAST[:-1]}
    chosen = sorted(rng.sample(sorted(names), 59))
    person = f"{rng.choice(FIRST)} {LAST[-1]}"  # the only one with that last name
    chosen.append(person)
    rng.shuffle(chosen)
    rows = ["name,city,team,start_year"]
    person_city = ""
    for name in chosen:
        city = rng.choice(CITIES)
        if name == person:
            person_city = city
        rows.append(f"{name},{city},{rng.choice(TEAMS)},{rng.randint(2012, 2026)}")
    (root / "people").mkdir(exist_ok=True)
    (root / "people" / "staff.csv").write_text("\n".join(rows) + "\n")

    # orders/: six monthly CSV files
    march_total = 0
    months = range(1, 7)
    (root / "orders").mkdir(exist_ok=True)
    for month in months:
        lines = ["order_id,customer,amount"]
        for n in range(rng.randint(15, 30)):
            amount = rng.randint(5, 400)
            lines.append(f"{month:02d}{n:03d},{rng.choice(chosen)},{amount}")
            if month == 3:
                march_total += amount
        (root / "orders" / f"2026-{month:02d}.csv").write_text("\n".join(lines) + "\n")

    # config/: the cache port in one section of an ini file (other sections have ports too)
    cache_port = rng.randint(6000, 6999)
    (root / "config").mkdir(exist_ok=True)
    (root / "config" / "services.ini").write_text(
        "[web]\nhost = 0.0.0.0\nport = 8080\n\n"
        f"[cache]\nhost = cache.internal\nport = {cache_port}\nmax_memory = 2gb\n\n"
        f"[queue]\nhost = queue.internal\nport = {cache_port + 1017}\n"
    )
    (root / "config" / "README.md").write_text("Service settings. Ports are TCP ports.\n")

    # logs/server.log: 600 lines, a known number holding the error code
    error_code = "E-1729"
    error_lines = 0
    log = []
    for minute in range(600):
        stamp = f"2026-10-{1 + minute // 300:02d}T{(minute // 60) % 24:02d}:{minute % 60:02d}:00Z"
        roll = rng.random()
        if roll < 0.04:
            log.append(f"{stamp} ERROR {error_code} disk quota exceeded on volume {rng.randint(1, 9)}")
            error_lines += 1
        elif roll < 0.08:
            log.append(f"{stamp} ERROR E-{rng.randint(2000, 2999)} upstream reset")
        else:
            log.append(f"{stamp} INFO request served in {rng.randint(3, 900)} ms")
    (root / "logs").mkdir(exist_ok=True)
    (root / "logs" / "server.log").write_text("\n".join(log) + "\n")

    return Facts(
        access_code=code,
        access_note=f"notes/meeting-{secret_note:02d}.md",
        person=person,
        person_city=person_city,
        order_files=len(months),
        march_total=march_total,
        cache_port=cache_port,
        error_code=error_code,
        error_lines=error_lines,
        staff_count=len(chosen),
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("dir")
    parser.add_argument("--seed", type=int, default=11)
    args = parser.parse_args()
    print(json.dumps(asdict(generate(Path(args.dir), args.seed)), indent=2))


if __name__ == "__main__":
    main()
