"""README.md and docs/*.md: every relative link resolves, every '#anchor' names a heading, the README stays short.

A link is ``[text](target)`` or ``![alt](target)`` (or a reference definition ``[label]: target``) outside fenced
code blocks and inline code. Targets with a URL scheme (``https:``, ``mailto:``, ...) are not checked. A relative
target must exist relative to the markdown file's folder (a leading ``/`` means the repository root, as on
GitHub); its ``#anchor`` part, for a markdown target (or the same file when the target is ``#anchor`` alone),
must be the GitHub slug of one of its headings (lowercase, punctuation other than hyphens and spaces dropped,
spaces to hyphens, ``-1``, ``-2``, ... for repeated headings; headings inside fenced code do not count) or an
HTML ``id``/``name`` anchor.
"""

from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import unquote

import pytest

ROOT = Path(__file__).resolve().parents[1]
README_MAX_BYTES = 12_000

_FENCE = re.compile(r"^ {0,3}(`{3,}|~{3,})")
_HEADING = re.compile(r"^ {0,3}(#{1,6})(?:[ \t]+(.*?))?[ \t]*$")
_INLINE_CODE = re.compile(r"(`+)(?:.+?)\1")
_LINK = re.compile(
    r"!?\[((?:[^\[\]]|\[[^\[\]]*\])*)\]\(\s*(<[^>]*>|[^()\s]*(?:\([^()\s]*\)[^()\s]*)*)"
    r"(?:\s+(?:\"[^\"]*\"|'[^']*'|\([^)]*\)))?\s*\)"
)
_REF_DEF = re.compile(r"^ {0,3}\[[^\]]+\]:\s*(<[^>]*>|\S+)")
_HTML_ANCHOR = re.compile(r"<a\s[^>]*\b(?:id|name)\s*=\s*[\"']([^\"']+)[\"']", re.IGNORECASE)
_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*:")


def _outside_fences(text: str):
    """(line number, line) of every line outside fenced code blocks (fence lines excluded)."""
    fence = None
    for n, line in enumerate(text.splitlines(), 1):
        m = _FENCE.match(line)
        if fence is None:
            if m:
                fence = m.group(1)
                continue
            yield n, line
        elif m and m.group(1)[0] == fence[0] and len(m.group(1)) >= len(fence) and not line[m.end() :].strip():
            fence = None


def slugify(heading: str) -> str:
    """GitHub's anchor for a heading's text."""
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # a link in a heading keeps only its text
    text = re.sub(r"<[^>]+>", "", text).strip().lower()
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def anchors(text: str) -> set[str]:
    """Every anchor a markdown text defines: heading slugs (with -1, -2 for repeats) and HTML id/name anchors."""
    seen: dict[str, int] = {}
    out: set[str] = set()
    for _, line in _outside_fences(text):
        out.update(_HTML_ANCHOR.findall(line))
        m = _HEADING.match(line)
        if not m:
            continue
        title = re.sub(r"[ \t]+#+$", "", m.group(2) or "")  # closing hashes of an ATX heading
        slug = slugify(title)
        count = seen.get(slug, 0)
        seen[slug] = count + 1
        out.add(slug if count == 0 else f"{slug}-{count}")
    return out


def links(text: str):
    """(line number, target) of every link and image outside fenced code blocks and inline code."""
    for n, line in _outside_fences(text):
        line = _INLINE_CODE.sub(lambda m: " " * len(m.group(0)), line)
        m = _REF_DEF.match(line)
        if m:
            yield n, m.group(1).strip("<>")
            continue
        for m in _LINK.finditer(line):
            yield n, m.group(2).strip("<>")


def broken_links(md: Path, root: Path) -> list[str]:
    """One 'file:line: target (why)' per link of ``md`` that does not resolve."""
    problems = []
    text = md.read_text(encoding="utf-8")
    for n, target in links(text):
        if not target or _SCHEME.match(target):
            continue
        path_part, _, anchor = target.partition("#")
        path_part = unquote(path_part)
        if path_part:
            dest = (root / path_part.lstrip("/")) if path_part.startswith("/") else (md.parent / path_part)
            if not dest.exists():
                problems.append(f"{md.relative_to(root)}:{n}: {target} (no such file)")
                continue
        else:
            dest = md
        if anchor and dest.is_file() and dest.suffix.lower() in (".md", ".markdown"):
            if unquote(anchor) not in anchors(dest.read_text(encoding="utf-8")):
                problems.append(f"{md.relative_to(root)}:{n}: {target} (no heading #{anchor} in {dest.name})")
    return problems


def _markdown_files() -> list[Path]:
    return [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]


@pytest.mark.parametrize("md", _markdown_files(), ids=lambda p: str(p.relative_to(ROOT)))
def test_relative_links_resolve(md):
    assert broken_links(md, ROOT) == []


def test_readme_is_a_front_page():
    size = (ROOT / "README.md").stat().st_size
    assert size < README_MAX_BYTES, f"README.md is {size} bytes; move details to docs/"
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    assert "make demo" in text and "make test" in text
    docs_linked = {t.partition("#")[0] for _, t in links(text) if t.startswith("docs/")}
    assert docs_linked, "the README links no docs page"


def test_github_slugs():
    assert slugify("Set-up: two commands") == "set-up-two-commands"
    assert slugify("Weights & Biases") == "weights--biases"
    assert (
        slugify("First real table: CIFAR-10N at CPU scale (measured)")
        == "first-real-table-cifar-10n-at-cpu-scale-measured"
    )
    assert slugify("Your own configs (`--config-dir`)") == "your-own-configs---config-dir"
    assert slugify("Table A and Appendix A.2") == "table-a-and-appendix-a2"
    assert slugify("long_runs and [a link](x.md)") == "long_runs-and-a-link"


def test_checker_reports_exactly_the_broken_links(tmp_path):
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "a.md").write_text(
        '# Title\n\n## Same\n\ntext\n\n## Same\n\n```\n# Fenced heading\n```\n\n<a id="custom"></a>\n', encoding="utf-8"
    )
    (tmp_path / "img.png").write_bytes(b"\x89PNG")
    (tmp_path / "README.md").write_text(
        "# Top title\n\n"
        "[good](docs/a.md) and ![img](img.png) and [dir](docs/) and [web](https://example.com/x.md#nope)\n"
        "[good anchor](docs/a.md#same) [repeat](docs/a.md#same-1) [html](docs/a.md#custom) [here](#top-title)\n"
        "[broken](docs/missing.md) [missing anchor](docs/a.md#nope)\n"
        "[too many repeats](docs/a.md#same-2) [fenced](docs/a.md#fenced-heading) [no anchor here](#absent)\n"
        "`[in code](nowhere.md)` and [mail](mailto:someone@example.com)\n\n"
        "```markdown\n[in a fence](also-nowhere.md)\n```\n\n"
        "[ref]: docs/gone.md\n",
        encoding="utf-8",
    )
    problems = broken_links(tmp_path / "README.md", tmp_path)
    reported = sorted(p.split(": ", 1)[1].split(" (", 1)[0] for p in problems)
    assert reported == sorted(
        ["docs/missing.md", "docs/a.md#nope", "docs/a.md#same-2", "docs/a.md#fenced-heading", "#absent", "docs/gone.md"]
    )
    assert all(p.startswith("README.md:") for p in problems)
    assert any(p.startswith("README.md:5: docs/missing.md (no such file)") for p in problems)
    assert broken_links(tmp_path / "docs" / "a.md", tmp_path) == []
