"""The documentation a clone carries: the rules table matches the catalogue, and every
link points at a file inside the repository."""

from __future__ import annotations

import re

from behavior.commands.rules import render_markdown
from behavior.rules import RULES
from tests.conftest import REPO

TABLE = re.compile(r"<!-- rules-table:begin[^\n]*\n(.*?)<!-- rules-table:end -->", re.S)
LINK = re.compile(r"\]\(([^)#\s]+)(?:#[^)]*)?\)")


def test_the_rules_doc_table_is_the_catalogue() -> None:
    text = (REPO / "docs" / "rules.md").read_text()
    match = TABLE.search(text)
    assert match, "docs/rules.md lost its generated table markers"
    assert match.group(1) == render_markdown(tuple(rule.info for rule in RULES)), (
        "docs/rules.md is stale: paste the output of `rba rules --format markdown`"
    )


def test_every_rule_has_a_section_in_the_rules_doc() -> None:
    text = (REPO / "docs" / "rules.md").read_text()
    headings = "\n".join(line for line in text.splitlines() if line.startswith("### "))
    missing = [rule.info.id for rule in RULES if f"`{rule.info.id}`" not in headings]
    assert missing == []


def test_readme_and_docs_link_only_to_files_in_the_repository() -> None:
    pages = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
    broken = []
    for page in pages:
        text = page.read_text()
        assert "../shared" not in text, f"{page.name} points outside the repository"
        for target in LINK.findall(text):
            if re.match(r"[a-z]+:", target):  # http:, man: and the like
                continue
            resolved = (page.parent / target).resolve()
            if not resolved.is_relative_to(REPO) or not resolved.exists():
                broken.append(f"{page.name}: {target}")
    assert broken == []
