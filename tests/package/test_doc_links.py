"""The documentation links only files that are in the repository.

Checked in README.md, BUILD_NOTES.md, CHANGELOG.md, docs/*.md and every README.md under
experiments/results/:

- every Markdown link or image (``[text](target)``, ``[label]: target``) points to a file or
  folder of the repository, relative to the page, and not outside it (no URL, no absolute
  path, nothing above the repository root); a ``#anchor`` into a Markdown page names one of
  its headings;
- a document named in the text (``DESIGN.md``, ``BUILD_NOTES.md``: an upper-case name) is one
  the repository holds, and a shell script named anywhere, code blocks included
  (``something.sh``), is a file of the repository.

"In the repository" means tracked by git, or new and not ignored (``git ls-files --cached
--others --exclude-standard``), so a generated ``runs/...`` path never counts. Links and
document names inside code are not read. Run by hand to list every problem:
``python tests/package/test_doc_links.py``.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path, PurePosixPath

import pytest

ROOT = Path(__file__).resolve().parents[2]

FENCE = re.compile(r"^(```|~~~).*?^\1", re.S | re.M)
INLINE_CODE = re.compile(r"`[^`\n]*`")
LINK = re.compile(r"!?\[(?:[^\[\]]|\[[^\]]*\])*\]\(\s*<?([^)\s>]*)>?(?:\s+\"[^\"]*\")?\s*\)")
REFERENCE = re.compile(r"^\s{0,3}\[[^\]]+\]:\s*<?(\S+?)>?(?:\s+\"[^\"]*\")?\s*$", re.M)
DOCUMENT = re.compile(r"(?<![\w/.-])([A-Z][A-Z0-9_]*\.md)\b")
SCRIPT = re.compile(r"(?<![\w.-])((?:[\w.-]+/)*[\w.-]+\.sh)\b")
SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*:")


def repository_files(root: Path = ROOT) -> set[str]:
    """Paths (posix, relative to ``root``) of every tracked or new, not ignored, file."""
    try:
        out = subprocess.run(
            ["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"],
            cwd=root,
            capture_output=True,
            check=True,
        ).stdout.decode()
        return {p for p in out.split("\0") if p and (root / p).is_file()}
    except (OSError, subprocess.CalledProcessError):
        return {p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file()}


def doc_pages(root: Path = ROOT) -> list[Path]:
    """The pages whose links are checked."""
    pages = [root / name for name in ("README.md", "BUILD_NOTES.md", "CHANGELOG.md")]
    pages += sorted((root / "docs").glob("*.md"))
    pages += sorted((root / "experiments" / "results").rglob("README.md"))
    return [p for p in pages if p.is_file()]


def prose(text: str) -> str:
    """``text`` without fenced code blocks, nor indented ones (an indented line after a blank
    line or after another code line; one that continues a paragraph or list item is prose)."""
    kept, code, previous_blank = [], False, True
    for line in FENCE.sub("", text).splitlines():
        blank = not line.strip()
        indented = line.startswith(("    ", "\t")) and not blank
        if indented and (previous_blank or code):
            code = True
        elif not blank:
            code = False
        if not (code and indented):
            kept.append(line)
        previous_blank = blank
    return "\n".join(kept)


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"[`*_]", "", heading.strip().lower())
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def anchors(text: str) -> set[str]:
    found: set[str] = set()
    for line in prose(text).splitlines():
        match = re.match(r"^#{1,6}\s+(.*?)\s*#*\s*$", line)
        if match:
            found.add(slug(match.group(1)))
    return found


def _resolve(page: Path, target: str, root: Path) -> str | None:
    """The repository path ``target`` names from ``page``, or None when it leaves the root."""
    parts: list[str] = []
    base = PurePosixPath(page.parent.relative_to(root).as_posix())
    for part in (base / target).parts:
        if part in ("", "."):
            continue
        if part == "..":
            if not parts:
                return None
            parts.pop()
        else:
            parts.append(part)
    return "/".join(parts)


def link_problems(page: Path, root: Path = ROOT, files: set[str] | None = None) -> list[str]:
    """One line per broken link or unknown file named on ``page``."""
    files = repository_files(root) if files is None else files
    folders = {str(PurePosixPath(f).parent) for f in files}
    folders |= {"/".join(f.split("/")[:i]) for f in files for i in range(1, f.count("/") + 1)}
    text = page.read_text()
    body = prose(text)
    without_code = INLINE_CODE.sub("", body)
    name = page.relative_to(root).as_posix()
    problems = []
    targets = LINK.findall(without_code) + REFERENCE.findall(without_code)
    for target in targets:
        if not target:
            problems.append(f"{name}: an empty link")
            continue
        if SCHEME.match(target) or target.startswith(("/", "\\")):
            problems.append(f"{name}: {target} is outside the repository")
            continue
        path, _, anchor = target.partition("#")
        resolved = name if not path else _resolve(page, path, root)
        if resolved is None:
            problems.append(f"{name}: {target} is outside the repository")
            continue
        if resolved not in files and resolved.rstrip("/") not in folders:
            problems.append(f"{name}: {target} is not a file of the repository")
            continue
        if anchor and resolved.endswith(".md") and resolved in files:
            if slug(anchor) not in anchors((root / resolved).read_text()):
                problems.append(f"{name}: {target} names no heading of {resolved}")
    basenames = {PurePosixPath(f).name for f in files}
    for document in sorted(set(DOCUMENT.findall(body))):
        if document not in basenames:
            problems.append(f"{name}: names {document}, which the repository does not hold")
    for script in sorted(set(SCRIPT.findall(text))):  # code blocks included
        resolved = _resolve(page, script, root)
        if script not in files and resolved not in files:
            problems.append(f"{name}: names {script}, which is not a file of the repository")
    return problems


def test_every_doc_link_points_into_the_repository():
    files = repository_files()
    problems = [p for page in doc_pages() for p in link_problems(page, files=files)]
    assert not problems, "\n".join(problems)


def test_the_design_pages_are_checked():
    checked = {p.relative_to(ROOT).as_posix() for p in doc_pages()}
    for page in (
        "docs/nat_recipes.md",
        "docs/decoding_cost.md",
        "docs/recorded_outputs.md",
        "docs/preemption_and_multiprocess.md",
        "docs/sharding.md",
        "CHANGELOG.md",
        "BUILD_NOTES.md",
    ):
        assert page in checked


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("[ok](b.md) and [folder](sub/)", None),
        ("[gone](missing.md)", "missing.md is not a file of the repository"),
        ("[web](https://example.org)", "https://example.org is outside the repository"),
        ("[up](../../etc/passwd)", "../../etc/passwd is outside the repository"),
        ("[abs](/etc/passwd)", "/etc/passwd is outside the repository"),
        ("[ignored](runs/out.json)", "runs/out.json is not a file of the repository"),
        ("[anchor](b.md#a-heading) [here](#top)", None),
        ("[anchor](b.md#no-such)", "b.md#no-such names no heading of b.md"),
        ("the DESIGN.md contract", "names DESIGN.md, which the repository does not hold"),
        ("see `b.md` and README.md", None),
        ("run `bash runs/final.sh`", "names runs/final.sh, which is not a file"),
        ("\n    bash runs/final.sh", "names runs/final.sh, which is not a file"),
        ("    [in code](missing.md)", None),
        ("`[in code](missing.md)`", None),
    ],
)
def test_the_checker_finds_what_it_should(tmp_path, line, expected):
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "c.txt").write_text("c\n")
    (tmp_path / "b.md").write_text("# A heading\n")
    (tmp_path / "runs").mkdir()
    (tmp_path / "runs" / "out.json").write_text("{}\n")
    page = tmp_path / "README.md"
    page.write_text(f"# Top\n\n{line}\n")
    files = {"README.md", "b.md", "sub/c.txt"}  # runs/ is ignored: not listed
    problems = link_problems(page, tmp_path, files)
    if expected is None:
        assert problems == []
    else:
        assert len(problems) == 1 and expected in problems[0], problems


if __name__ == "__main__":
    found = [p for page in doc_pages() for p in link_problems(page)]
    print("\n".join(found) if found else f"no broken link in {len(doc_pages())} pages")
    sys.exit(1 if found else 0)
