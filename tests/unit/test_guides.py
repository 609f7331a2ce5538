"""The prose pages of docs/ (getting started, the guides, development) as a reader meets them:
every file they include exists, CI runs the test command they show, and no sentence runs past
sixty words. (The generated references are tests/unit/test_docs.py's.)"""
import re

import pytest

from support.processes import REPO_ROOT

DOCS = REPO_ROOT / "docs"
PROSE_PAGES = sorted(
    page for page in DOCS.rglob("*.md")
    if page.relative_to(DOCS).parts[0] not in {"reference", "_generated", "examples"})
# ```{literalinclude} ../../deploy/nginx.conf  and  ```{include} ../CHANGELOG.md
INCLUDE = re.compile(r"^```\{(?:literalinclude|include)\} (\S+)$", re.MULTILINE)
LONGEST_SENTENCE = 60


def sentences(markdown):
    """The prose of a page, a sentence at a time: code blocks, tables, headings and directive
    options left out, each list item a paragraph of its own."""
    prose = re.sub(r"^```.*?^```", "", markdown, flags=re.DOTALL | re.MULTILINE)
    prose = "\n".join(line for line in prose.splitlines()
                      if not line.lstrip().startswith(("|", "#", ":")))
    prose = re.sub(r"^\s*(?:[-*]|\d+\.)\s+", "\n\n", prose, flags=re.MULTILINE)
    for paragraph in re.split(r"\n\s*\n", prose):
        paragraph = " ".join(paragraph.split())
        yield from (sentence for sentence in re.split(r"(?<=[.!?])\s+(?=[A-Z`*(\"])", paragraph)
                    if sentence)


def test_there_are_prose_pages():
    assert {"getting-started.md", "development.md", "changelog.md"} <= {
        page.name for page in PROSE_PAGES}


@pytest.mark.parametrize("page", PROSE_PAGES, ids=lambda page: str(page.relative_to(DOCS)))
def test_every_file_a_page_includes_exists(page):
    missing = [path for path in INCLUDE.findall(page.read_text())
               if not (page.parent / path).is_file()]

    assert missing == []


@pytest.mark.parametrize("page", PROSE_PAGES, ids=lambda page: str(page.relative_to(DOCS)))
def test_no_sentence_runs_past_sixty_words(page):
    long_ones = [sentence for sentence in sentences(page.read_text())
                 if len(sentence.split()) > LONGEST_SENTENCE]

    assert long_ones == []


def test_ci_runs_the_test_command_the_development_page_shows():
    ci_command = (REPO_ROOT / ".ci" / "run").read_text().rstrip("\n").splitlines()[-1]
    shown = "python3 -m venv .venv && .venv/bin/pip install '.[test]' && " + ci_command

    assert ci_command.startswith(".venv/bin/python -m tests.support.openproject_clients && ")
    assert f"\n{shown}\n" in (DOCS / "development.md").read_text()
