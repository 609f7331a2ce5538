"""The prose pages of docs/ (getting started, the guides, development) as a reader meets them:
every file they include exists, CI runs the test command they show, no sentence runs past
sixty words, and every program, configuration file or shell session they show is a file they
include, which a test runs. (The generated references are tests/unit/test_docs.py's.)"""
import re

import pytest

from affix.storage.migrations import LATEST_VERSION
from support.processes import REPO_ROOT

DOCS = REPO_ROOT / "docs"
PROSE_PAGES = sorted(
    page for page in DOCS.rglob("*.md")
    if page.relative_to(DOCS).parts[0] not in {"reference", "_generated", "examples"})
# ```{literalinclude} ../../deploy/nginx.conf  and  ```{include} ../CHANGELOG.md
INCLUDE = re.compile(r"^[ \t]*```\{(?:literalinclude|include)\} (\S+)$", re.MULTILINE)
LONGEST_SENTENCE = 60
# a fenced block, indented in a list item or not, and its language: ```toml ... ```; a
# directive (```{literalinclude} ...) has no language of its own
FENCED_BLOCK = re.compile(r"^[ \t]*```([\w-]*)[^\n]*\n(.*?)^[ \t]*```", re.DOTALL | re.MULTILINE)
# what a reader copies and runs as it stands, so it must be a file a test runs
PROGRAM_LANGUAGES = {"python", "py", "javascript", "js", "html", "nginx", "ini", "systemd", "toml",
                     "yaml", "yml"}
SHELL_LANGUAGES = {"bash", "sh", "shell", "console"}
# a few one-line commands, each naming a command the CLI reference documents, may stay inline
LONGEST_INLINE_SHELL = 3
# the blocks that stay inline, by page and first line, and why
INLINE_ALLOWED = {
    ("development.md", '.venv/bin/python -m pytest -m "not system"   # fast: unit/ and '
                       'functional/ on SQLite'):
        "four alternative pytest selections, one line each; development.md's own CI command "
        "is checked by test_ci_runs_the_test_command_the_development_page_shows",
    ("guides/deploying.md",
     "useradd --system --home-dir /srv/affix --shell /usr/sbin/nologin affix"):
        "an administrator's steps as root with systemd, which no test may take; the unit they "
        "install is checked by tests/unit/test_deploy.py",
    ("guides/deploying.md", "systemctl stop affix affix-webhooks affix-cleanup.timer"):
        "the restores, as root with systemd; tests/system/test_backups.py and "
        "test_backups_postgres_s3.py restore with the same scripts, without systemd",
    ("guides/checking-and-listing.md", "$ affix check"):
        "a transcript of output, whose lines tests/system/test_check.py asserts",
    ("guides/configuration-file.md", "$ affix cleanup"):
        "a transcript of output, whose lines tests/functional/test_config_file.py asserts",
    ("guides/object-storage-setup.md", "$ affix storage init"):
        "a transcript of output, whose lines tests/system/test_storage_init_s3.py asserts",
    ("guides/upload-client.md", "$ affix upload a.png big.iso b.png --url http://127.0.0.1:8000"):
        "a transcript of output, whose lines tests/system/test_upload_client.py asserts",
    ("guides/webhooks.md", "affix webhooks add https://hooks.example.com/affix         # every "
                           "event; prints its secret"):
        "one-line commands, each in the CLI reference; tests/functional/test_webhooks.py runs "
        "add (both forms), list and remove",
    ("guides/configuration-file.md", "[Service]"):
        "the two lines by which a unit differs from the tested deploy/affix.service",
    ("guides/operating.md", "livenessProbe:  {httpGet: {path: /health, port: 8000}, "
                            "periodSeconds: 10}"):
        "two lines naming the routes /health and /health/ready, which "
        "tests/functional/test_health.py asks",
    ("guides/operating.md", "# in the [Service] section of affix.service: the start counts "
                            "once the node is ready"):
        "a two-line addition to the tested deploy/affix.service",
}


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


def untested_examples(page) -> list:
    """The blocks of a page that a reader copies as programs, configuration or shell sessions
    and that are typed into the page, not included from a file: (first line, language)."""
    found = []
    for language, body in FENCED_BLOCK.findall(page.read_text()):
        lines = body.splitlines()
        if language in PROGRAM_LANGUAGES or (
                language in SHELL_LANGUAGES and len(lines) > LONGEST_INLINE_SHELL):
            found.append((lines[0] if lines else "", language))
    return found


@pytest.mark.parametrize("page", PROSE_PAGES, ids=lambda page: str(page.relative_to(DOCS)))
def test_every_example_a_page_shows_is_a_file_it_includes(page):
    name = str(page.relative_to(DOCS))
    typed_in = [(first_line, language) for first_line, language in untested_examples(page)
                if (name, first_line) not in INLINE_ALLOWED]

    assert typed_in == []


def test_every_block_allowed_inline_is_still_on_its_page():
    shown = {(str(page.relative_to(DOCS)), first_line)
             for page in PROSE_PAGES for first_line, _ in untested_examples(page)}

    assert set(INLINE_ALLOWED) - shown == set()


def test_ci_runs_the_test_command_the_development_page_shows():
    # .ci/run runs the command's two steps apart, lint and the docs build beside the first
    lines = (REPO_ROOT / ".ci" / "run").read_text().rstrip("\n").splitlines()
    clients = ".venv/bin/python -m tests.support.openproject_clients"
    shown = f"python3 -m venv .venv && .venv/bin/pip install '.[test]' && {clients} && {lines[-1]}"

    assert lines[-1] == ".venv/bin/python -m pytest"
    assert clients in lines
    assert f"\n{shown}\n" in (DOCS / "development.md").read_text()


def test_the_checking_guide_names_the_migration_this_affix_is_at():
    # its transcript is written by hand (a PostgreSQL, a bucket and clamd of a real install):
    # the one figure that changes with affix itself is held to it here
    page = (REPO_ROOT / "docs" / "guides" / "checking-and-listing.md").read_text()
    assert re.findall(r"at migration (\d+)\n", page) == [str(LATEST_VERSION)]
    assert re.findall(r"this affix needs (\d+)", page) == [str(LATEST_VERSION)]
