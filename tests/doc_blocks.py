"""The fenced code blocks of Markdown pages, with the `<!-- doc-test: KIND -->` mark before each.

Kinds: `run` (the docs tests run it), `service` (started in the background; the blocks after it
run against it), `docker` (the Docker tests run these exact commands), `update` (the template
update test runs it), `ci` (the command `.ci/run` runs), `check` (the generated-project test
runs it in every variant: the generated README's `make check`). Shell and Python blocks must carry a
mark; `text` and other blocks show output or files and are not run.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

KINDS = {"run", "service", "docker", "update", "ci", "check"}
CODE_LANGUAGES = {"sh", "bash", "shell", "console", "python", "py"}
FENCE = re.compile(
    r"^(?P<indent> *)```(?P<lang>[\w-]*)[^\n]*\n(?P<code>.*?)^(?P=indent)```", re.M | re.S
)
MARK = re.compile(r"<!--\s*doc-test:\s*(?P<kind>[\w-]+)\s*-->\s*$")


@dataclass(frozen=True)
class Block:
    """One fenced block: where it is, its language, its mark (or None) and its code."""

    page: Path
    line: int
    language: str
    kind: str | None
    code: str

    @property
    def where(self) -> str:
        return f"{self.page.name}:{self.line}"

    def commands(self) -> list[str]:
        """Its shell commands, one per line, without comments and with continuations joined."""
        joined = self.code.replace("\\\n", " ")
        lines = (line.split("  #", 1)[0].strip() for line in joined.splitlines())
        return [line for line in lines if line and not line.startswith("#")]


def blocks(page: Path) -> list[Block]:
    """Every fenced block of `page`, in order."""
    text = page.read_text(encoding="utf-8")
    found = []
    for match in FENCE.finditer(text):
        before = text[: match.start()].rstrip("\n").splitlines()
        mark = MARK.search(before[-1]) if before else None
        found.append(
            Block(
                page=page,
                line=text.count("\n", 0, match.start()) + 1,
                language=match["lang"].lower(),
                kind=mark["kind"] if mark else None,
                code=match["code"],
            )
        )
    return found


def unmarked_code(pages: list[Path]) -> list[str]:
    """Shell or Python blocks without a mark, or with an unknown one: `page:line` each."""
    problems = []
    for page in pages:
        for block in blocks(page):
            if block.kind is not None and block.kind not in KINDS:
                problems.append(f"{block.where}: unknown mark {block.kind!r}")
            elif block.language in CODE_LANGUAGES and block.kind is None:
                problems.append(f"{block.where}: a {block.language} block without a doc-test mark")
    return problems


def nav_pages(root: Path) -> list[Path]:
    """README.md, then the site's pages in the order of mkdocs.yml's nav."""
    nav = re.findall(r"^\s+- [^:\n]+: (\S+\.md)\s*$", (root / "mkdocs.yml").read_text(), re.M)
    return [root / "README.md", *(root / "docs" / page for page in nav)]
