"""The documentation a user reads says what the code does: the README's hook reference is the
hookspecs' own text, and its examples use affix's public names only."""
import re

import affix

from affix.app.uploads.multipart import SNIFF_SIZE
from affix.plugins import hookspecs
from support.hook_reference import README, hook_specs, readme_section, render

PUBLIC_NAMES = set(affix.__all__)


def test_the_readmes_hook_reference_is_the_hookspecs_text():
    # when this fails: python -m tests.support.hook_reference
    assert readme_section(README.read_text()) == render()


def test_every_hook_has_a_heading_in_the_readme_and_every_heading_a_hook():
    readme = README.read_text()
    headings = re.findall(r"^### `(affix_\w+)\(", readme, re.MULTILINE)
    assert headings == [spec.__name__ for spec in hook_specs()]


def test_the_head_a_policy_is_shown_is_as_long_as_the_spec_says():
    assert f"the first {SNIFF_SIZE // 1024} KiB of the file" in " ".join(
        hookspecs.affix_validate_upload.__doc__.split())


def test_the_readme_imports_only_affixs_public_names():
    imports = re.findall(r"^from (affix\S*) import (.+)$", README.read_text(), re.MULTILINE)
    assert imports, "the README shows no import of affix"
    for module, names in imports:
        assert module == "affix", f"the README imports from {module}"
        assert set(re.findall(r"\w+", names.split("#")[0])) <= PUBLIC_NAMES
