"""Put the committed results table (reports/results.md, written by the report stage) into
README.md between its two markers, so the README opens with the reproduction's numbers.

    python -m sae.report.readme [--check]

--check exits 1 (one line) when README.md's table is not reports/results.md's.
"""
from __future__ import annotations

import sys
from pathlib import Path

START, END = "<!-- results: generated from reports/results.md by `python -m sae.report.readme` -->", \
    "<!-- results: end -->"


def spliced(readme: str, results: str) -> str:
    if START not in readme or END not in readme:
        raise ValueError(f"README.md lacks the markers {START!r} ... {END!r}")
    head, rest = readme.split(START, 1)
    _, tail = rest.split(END, 1)
    return f"{head}{START}\n{results.rstrip()}\n{END}{tail}"


def main(argv=None) -> int:
    args = sys.argv[1:] if argv is None else argv
    root = Path.cwd()
    readme, results = root / "README.md", root / "reports" / "results.md"
    try:
        new = spliced(readme.read_text(), results.read_text())
    except (OSError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if "--check" in args:
        if new != readme.read_text():
            print("error: README.md's results table is not reports/results.md's; run `python -m sae.report.readme`",
                  file=sys.stderr)
            return 1
        return 0
    readme.write_text(new)
    return 0


if __name__ == "__main__":
    sys.exit(main())
