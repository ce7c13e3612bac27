"""The tour of docs/ARCHITECTURE.md points at files and names that exist.

Each row of the tour table names files (``where``) and, in ``read``, names defined in one of
them: a module-level function, class or constant, or ``Class.name`` for a method of the class
or an attribute it assigns (``self.name = ...``). Both are read with ``ast``, not imported.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "ARCHITECTURE.md"
CONCEPTS = (
    "one-hot vs embedding",
    "the three output types",
    "Q, K, V",
    "scores",
    "heads and W^o",
    "positions",
    "attention vs CNN",
    "masks",
    "AT vs NAT",
    "the length predictor",
    "EOS cut",
    "BLEU",
    "beam search",
    "BatchNorm vs LayerNorm",
)


def tour_rows() -> list[tuple[str, list[str], list[str]]]:
    """``(concept, files, names)`` of every row of the tour table, in order."""
    text = DOC.read_text()
    table = text[text.index("## A tour") :].split("\n## ")[0]
    rows = []
    for line in table.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) != 4 or not cells[0].isdigit():
            continue
        files = re.findall(r"`([^`]+)`", cells[2])
        names = re.findall(r"`([^`]+)`", cells[3])
        rows.append((cells[1], files, names))
    return rows


def defined_names(path: Path) -> set[str]:
    """Module-level names of ``path``, and ``Class.member`` for methods and self attributes."""
    tree = ast.parse(path.read_text())
    names: set[str] = set()
    for node in tree.body:
        if isinstance(node, ast.FunctionDef | ast.ClassDef):
            names.add(node.name)
        elif isinstance(node, ast.Assign | ast.AnnAssign):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            names.update(t.id for t in targets if isinstance(t, ast.Name))
        if isinstance(node, ast.ClassDef):
            for item in ast.walk(node):
                if isinstance(item, ast.FunctionDef) and item in node.body:
                    names.add(f"{node.name}.{item.name}")
                if isinstance(item, ast.Attribute) and isinstance(item.ctx, ast.Store):
                    if isinstance(item.value, ast.Name) and item.value.id == "self":
                        names.add(f"{node.name}.{item.attr}")
    return names


def test_the_tour_covers_the_concepts_of_the_study_notes_in_their_order():
    assert [concept for concept, _, _ in tour_rows()] == list(CONCEPTS)


@pytest.mark.parametrize(("concept", "files", "names"), tour_rows(), ids=lambda v: str(v)[:20])
def test_every_file_and_name_of_the_tour_exists(concept, files, names):
    assert files and names, concept
    for file in files:
        assert (ROOT / file).is_file(), f"{concept}: no file {file}"
    defined = set().union(*(defined_names(ROOT / file) for file in files))
    missing = [name for name in names if name not in defined]
    assert not missing, f"{concept}: {missing} not defined in {files}"


def test_the_checker_sees_a_missing_name():
    names = defined_names(ROOT / "src" / "attnlab" / "nn" / "attention.py")
    assert {"MultiHeadAttention", "MultiHeadAttention.out", "MultiHeadAttention.step"} <= names
    assert "MultiHeadAttention.outt" not in names and "multi_head_attention" not in names
