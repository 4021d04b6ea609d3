"""Generate a synthetic context the size of the seed's example: about 8,500 files and 45 MB.

    python benchmarks/gen_context.py DIR [--files 8466] [--mb 44.63] [--seed 7]

Deterministic for a seed: a tree of source-like and prose-like text files of varied sizes, with the
word `needle` planted on a known number of lines (printed, so a grep can be checked).
"""

from __future__ import annotations

import argparse
import random
from pathlib import Path

WORDS = (
    "alpha beta gamma delta context model query answer token batch shard index cache limit sandbox "
    "runtime socket stream record store tenant budget result value error retry parse build render"
).split()
EXTENSIONS = [".py", ".md", ".txt", ".json", ".ts", ".go", ".rs", ".yaml"]


def generate(root: Path, files: int, total_mb: float, seed: int) -> int:
    rng = random.Random(seed)
    mean = total_mb * 1e6 / files
    planted = 0
    for i in range(files):
        depth = rng.randint(0, 3)
        parts = [f"d{rng.randint(0, 40):02d}" for _ in range(depth)]
        path = root.joinpath(*parts, f"f{i:05d}{rng.choice(EXTENSIONS)}")
        path.parent.mkdir(parents=True, exist_ok=True)
        size = max(64, int(rng.expovariate(1 / mean)))
        lines, written = [], 0
        while written < size:
            line = " ".join(rng.choice(WORDS) for _ in range(rng.randint(4, 14)))
            if rng.random() < 0.002:
                line += " needle"
                planted += 1
            lines.append(line)
            written += len(line) + 1
        path.write_text("\n".join(lines) + "\n")
    return planted


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("dir")
    parser.add_argument("--files", type=int, default=8466)
    parser.add_argument("--mb", type=float, default=44.63)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    planted = generate(Path(args.dir), args.files, args.mb, args.seed)
    print(f"{args.files} files, {planted} lines with 'needle', in {args.dir}")


if __name__ == "__main__":
    main()
