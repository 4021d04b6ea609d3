"""Generate the Python gRPC code from proto/ (the one way it is made; never edit the output by hand).

    python proto/generate.py          # write proto/rlm_proto/
    python proto/generate.py --check  # exit 1 when the checked-in code is stale

protoc names the generated modules after the proto include path (`rlm/v1/...`), which would make a
top-level `rlm` package (the name of the paper's own library on PyPI). We generate into a scratch
directory and rewrite those imports to the `rlm_proto` package, which both the orchestrator and the
sandbox image ship.
"""

from __future__ import annotations

import argparse
import re
import shutil
import sys
import tempfile
from pathlib import Path

PROTO_ROOT = Path(__file__).resolve().parent
OUTPUT = PROTO_ROOT / "rlm_proto"
BANNER = "# Generated from proto/ by `python proto/generate.py`. DO NOT EDIT.\n"
_IMPORT = re.compile(r"^from rlm\.(v\d+) import ", re.MULTILINE)


def generate(into: Path) -> None:
    from grpc_tools import protoc  # dev dependency: imported only here

    sources = sorted(str(p.relative_to(PROTO_ROOT)) for p in PROTO_ROOT.glob("rlm/**/*.proto"))
    include = Path(protoc.__file__).parent / "_proto"
    with tempfile.TemporaryDirectory() as scratch:
        args = [
            "protoc",
            f"-I{PROTO_ROOT}",
            f"-I{include}",
            f"--python_out={scratch}",
            f"--pyi_out={scratch}",
            f"--grpc_python_out={scratch}",
            *sources,
        ]
        if protoc.main(args) != 0:
            raise SystemExit("protoc failed")
        into.mkdir(parents=True, exist_ok=True)
        (into / "__init__.py").write_text(BANNER)
        for produced in sorted(Path(scratch, "rlm").rglob("*.py*")):
            target = into / produced.relative_to(Path(scratch, "rlm"))
            target.parent.mkdir(parents=True, exist_ok=True)
            (target.parent / "__init__.py").write_text(BANNER)
            text = _IMPORT.sub(r"from rlm_proto.\1 import ", produced.read_text())
            target.write_text(BANNER + text)


def _snapshot(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): p.read_text() for p in sorted(root.rglob("*.py*")) if p.is_file()}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="fail when the checked-in code is stale")
    args = parser.parse_args()
    if not args.check:
        shutil.rmtree(OUTPUT, ignore_errors=True)
        generate(OUTPUT)
        return 0
    with tempfile.TemporaryDirectory() as scratch:
        fresh = Path(scratch, "rlm_proto")
        generate(fresh)
        if _snapshot(fresh) != _snapshot(OUTPUT):
            print("generated code in proto/rlm_proto is stale: run `make proto`", file=sys.stderr)
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
