r"""The benchmark table of docs/performance.md, rendered from benchmarks/results.json.

    python benchmarks/summary.py       # the last step of `make bench`

Every section of ``results.json`` declares its own headline figures, a list under
``"headline"``; each entry is ::

    {"name": str, "value": float | int | None, "target": str, "met": bool | None,
     "unit": str (optional, appended to the value),
     "command": str, "date": str (optional: an entry measured by a run of its own)}

``value`` None means not measured (``met`` None too). This script renders one markdown row
per entry (benchmark, figure, target, met or missed, the date of the section's
``machine.date`` and its ``command``) and rewrites the text between the markers
``<!-- bench:begin -->`` and ``<!-- bench:end -->`` of docs/performance.md, leaving everything
else as it was. Without the markers it appends a ``## Benchmarks`` section holding them.
Sections come in issue order (attention, long_sequences, training, decoding, pipeline), then
any others alphabetically; a section without a headline gets one row saying so.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
RESULTS_PATH = ROOT / "benchmarks" / "results.json"
NOTES_PATH = ROOT / "docs" / "performance.md"
BEGIN, END = "<!-- bench:begin -->", "<!-- bench:end -->"
ORDER = ("attention", "long_sequences", "training", "decoding", "pipeline")
HEADER = ("benchmark", "measured", "target", "met", "date", "command")
VERDICT = {True: "met", False: "**missed**", None: "not measured"}


def format_value(value: Any, unit: str = "") -> str:
    """3 significant digits (no exponent below 10^6), then ``unit``; None is '-'."""
    if value is None:
        return "-"
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"headline value must be a number or null; got {value!r}")
    if isinstance(value, float) and abs(value) < 1000:
        text = f"{value:.3g}"
    else:
        text = f"{value:,.0f}"
    return text + unit


def _cell(text: Any) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def check_entry(section: str, entry: Any) -> dict[str, Any]:
    """One headline entry, checked: a clear error names the section and the problem."""
    if not isinstance(entry, dict):
        raise ValueError(
            f"results.json [{section}].headline: entries must be objects; got {entry!r}"
        )
    missing = [key for key in ("name", "value", "target", "met") if key not in entry]
    if missing:
        raise ValueError(
            f"results.json [{section}].headline entry {entry.get('name', entry)!r} lacks "
            f"{', '.join(missing)}; required: name, value, target, met (unit optional)"
        )
    if entry["met"] not in (True, False, None):
        raise ValueError(
            f"results.json [{section}].headline {entry['name']!r}: met must be true, false or "
            f"null; got {entry['met']!r}"
        )
    return entry


def section_rows(name: str, section: dict[str, Any]) -> list[list[str]]:
    """The markdown cells of one section's headline entries."""
    machine = section.get("machine") or {}
    date = str(machine.get("date", "-"))[:10]
    command = f"`{section['command']}`" if section.get("command") else "-"
    headline = section.get("headline")
    if headline is None:
        return [[name, "-", "-", "no headline in results.json", date, command]]
    if not isinstance(headline, list):
        raise ValueError(f"results.json [{name}].headline must be a list; got {headline!r}")
    rows = []
    for entry in (check_entry(name, entry) for entry in headline):
        figure = format_value(entry["value"], entry.get("unit", ""))
        when, how = date, command
        if entry.get("command"):  # an entry measured by a run of its own (decoding --length_only)
            when, how = str(entry.get("date", "-"))[:10], f"`{entry['command']}`"
        rows.append([entry["name"], figure, entry["target"], VERDICT[entry["met"]], when, how])
    return rows


def render(results: dict[str, Any]) -> str:
    """The markdown table of every section's headline entries."""
    if not isinstance(results, dict):
        raise ValueError(f"results.json must hold an object of sections; got {type(results)}")
    names = [name for name in ORDER if name in results]
    names += sorted(name for name in results if name not in ORDER)
    lines = ["| " + " | ".join(HEADER) + " |", "|" + "---|" * len(HEADER)]
    for name in names:
        if not isinstance(results[name], dict):
            raise ValueError(f"results.json [{name}] must be an object; got {results[name]!r}")
        for row in section_rows(name, results[name]):
            lines.append("| " + " | ".join(_cell(cell) for cell in row) + " |")
    return "\n".join(lines)


def replace_block(text: str, block: str) -> str:
    """``text`` with the lines between the markers replaced by ``block`` (appended if absent)."""
    begins, ends = text.count(BEGIN), text.count(END)
    if begins == ends == 0:
        return text.rstrip("\n") + f"\n\n## Benchmarks\n\n{BEGIN}\n{block}\n{END}\n"
    if begins != 1 or ends != 1:
        raise ValueError(f"expected one {BEGIN} and one {END}; found {begins} and {ends}")
    if text.index(BEGIN) > text.index(END):
        raise ValueError(f"{END} comes before {BEGIN}")
    head, rest = text.split(BEGIN)
    _, tail = rest.split(END)
    return f"{head}{BEGIN}\n{block}\n{END}{tail}"


def main(argv: list[str] | None = None) -> str:
    """Render results.json into the notes file; returns the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--results", type=Path, default=RESULTS_PATH, help="results JSON file")
    parser.add_argument("--notes", type=Path, default=NOTES_PATH, help="markdown file to update")
    args = parser.parse_args(argv)
    try:
        results = json.loads(args.results.read_text())
        table = render(results)
        text = args.notes.read_text() if args.notes.exists() else ""
        block = (
            "Headline figures of `make bench`, rendered by `python benchmarks/summary.py`\n"
            f"from `benchmarks/results.json` (do not edit by hand):\n\n{table}"
        )
        args.notes.write_text(replace_block(text, block))
    except (OSError, ValueError) as error:  # json.JSONDecodeError is a ValueError
        sys.exit(f"summary.py: {error}")
    print(table)
    return table


if __name__ == "__main__":
    main()
