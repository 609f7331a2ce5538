"""The documentation says what the code does: each generated reference (docs/_ext/affix_docs)
holds every setting, command, flag, hook, metric, error and operation the code has, and the
docs' examples use affix's public names only. The site itself is built by .ci/run (``-W``)."""
import dataclasses
import inspect
import re
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry

import affix
from affix import Settings
from affix.app.errors import DomainError
from affix.app.http.errors import FALCON_STATUS_ERRORS
from affix.app.metrics import Metrics, attachment_gauges, webhook_gauges
from affix.app.settings import known_variables
from affix.app.uploads.multipart import SNIFF_SIZE
from affix.plugins import hookspecs
from affix.plugins.clamav import ScanOptions
from affix_docs import GENERATORS, cli, errors, expand_markers, http_api, links, metrics
from affix_docs import settings as settings_reference
from affix_docs import throwaway

DOCS = Path(__file__).resolve().parents[2] / "docs"
PUBLIC_NAMES = set(affix.__all__)


def sections(markdown: str, level: str) -> dict:
    """The text under each heading of ``level`` ("##"), by the heading's code span."""
    parts = re.split(rf"^{level} `([^`]+)`$", markdown, flags=re.MULTILINE)
    return dict(zip(parts[1::2], parts[2::2]))


def test_every_setting_the_code_reads_has_its_section():
    documented = sections(settings_reference.reference(), "##")
    assert set(documented) == known_variables(), (
        "a setting without its metadata (affix.app.settings.setting), or metadata of none")
    for name, text in documented.items():
        # its form and default, then its meaning
        assert re.match(r"\n\n\*[^*]+\*; unset: .+\n\n[A-Z`].*\.\n", text), name


def _field(options, path):
    for name in path:
        options = getattr(options, name)
    return options


def test_each_documented_default_is_what_an_unset_variable_gives():
    read = Settings.from_environ({})
    checked = 0
    for variable in settings_reference.variables():
        field = next(each for each in dataclasses.fields(type(_field(read, variable.path[:-1])))
                     if each.name == variable.path[-1])
        if "unset" in field.metadata:
            continue
        assert _field(read, variable.path) == field.default, variable.name
        # what the reference shows, set as the variable's value, reads as leaving it unset
        if variable.unset.startswith("`"):
            shown = variable.unset.strip("`")
            assert _field(Settings.from_environ({variable.name: shown}), variable.path) == (
                _field(read, variable.path)), variable.name
            checked += 1
    # the defaults shown as values (not "none" or "empty"): the loop did look at them
    assert checked >= 13


# a value of each form, and what the settings make of it
SAMPLES = {"size": ("2K", 2048), "whole number": ("7", 7), "number": ("2.5", 2.5)}
# what a variable's value needs beside it
COMPANIONS = {"AFFIX_SCAN_MODE": {"AFFIX_CLAMD": throwaway.UNREACHED_CLAMD}}


def test_each_documented_form_is_what_the_setting_reads():
    checked = 0
    for variable in settings_reference.variables():
        default = _field(Settings.from_environ({}), variable.path)
        if variable.form == "flag":
            samples = [("0" if default else "1", not default)]
        elif re.fullmatch(r"[a-z]+( or [a-z]+)+", variable.form):
            # one of a few words
            samples = [(choice, choice) for choice in variable.form.split(" or ")]
        elif variable.form in SAMPLES:
            samples = [SAMPLES[variable.form]]
        else:
            continue
        for text, value in samples:
            read = Settings.from_environ({variable.name: text,
                                          **COMPANIONS.get(variable.name, {})})
            assert _field(read, variable.path) == value, (variable.name, text)
            checked += 1
    assert checked >= 15


def test_every_command_and_flag_has_its_section():
    documented = sections(cli.reference(), "##")
    commands = cli.commands()
    assert list(documented) == [command.name for command in commands]
    assert {"affix serve", "affix webhooks run", "affix upload", "affix apikey revoke"} <= set(
        documented)
    for command in commands:
        # what --help shows, beside what the reference says
        flags = set(re.findall(r"(?<![\w-])--[a-z][\w-]*", command.parser.format_help()))
        positionals = [action.metavar or action.dest for action in cli.arguments(command.parser)
                       if not action.option_strings]
        for word in (flags - {"--help"}) | set(positionals):
            assert f"`{word}" in documented[command.name], (command.name, word)


def test_every_command_and_argument_says_what_it_is():
    for command in cli.commands():
        assert command.help, command.name
        for action in cli.arguments(command.parser):
            assert action.help, f"{command.name} {action.dest}: no help= in build_parser()"


def test_a_flags_default_is_filled_in():
    gc = sections(cli.reference(), "##")["affix gc"]
    assert "(default %(default)s)" not in gc
    assert re.search(r"\(default \d+\)", gc)


def test_every_hook_is_documented_with_each_of_its_parameters():
    specs = [function for name, function in vars(hookspecs).items()
             if callable(function) and hasattr(function, "affix_spec")]
    assert len(specs) >= 10
    for spec in specs:
        doc = inspect.getdoc(spec)
        assert doc, f"{spec.__name__} has no docstring: autodoc would leave it out"
        for parameter in inspect.signature(spec).parameters:
            assert f":param {parameter}:" in doc, (spec.__name__, parameter)
    page = (DOCS / "reference" / "hooks.md").read_text()
    assert ".. automodule:: affix.plugins.hookspecs\n   :members:" in page


def test_the_head_a_policy_is_shown_is_as_long_as_the_spec_says():
    assert f"the first {SNIFF_SIZE // 1024} KiB of the file" in " ".join(
        hookspecs.affix_validate_upload.__doc__.split())


def test_every_metric_is_in_the_reference():
    reference = metrics.reference()
    documented = re.findall(r"^\| `(\w+)` \| (\w+) \|", reference, re.MULTILINE)
    declared = [(family.name + ("_total" if family.type == "counter" else ""), family.type)
                for metric in vars(Metrics(CollectorRegistry())).values()
                if hasattr(metric, "describe") for family in metric.describe()]
    with throwaway.services() as built:
        counted = [(name, "gauge") for name, _, _ in
                   attachment_gauges(built.catalog, built.settings) + webhook_gauges(built.outbox)]
    assert built.settings.scan == ScanOptions("stream", throwaway.UNREACHED_CLAMD)
    assert set(declared + counted + [("affix_build_info", "gauge")]) == set(documented)
    assert "| `affix_refusals_total` | counter | `reason` |" in reference
    assert "_created" not in reference


def test_every_error_identifier_is_in_the_reference_with_its_status():
    reference = errors.reference()

    def kinds(kind):
        return [kind] + [each for subclass in kind.__subclasses__() for each in kinds(subclass)]

    for kind in kinds(DomainError):
        assert re.search(rf"^\| `{kind.identifier}` \| {kind.status} [^|]+ \| "
                         rf"`{kind.__name__}` \|", reference, re.MULTILINE)
    for status, (identifier, message) in FALCON_STATUS_ERRORS.items():
        assert f"| `{identifier}` | {status} " in reference
        assert f"| {errors.HTTP_LAYER} | {message} |" in reference


def test_every_operation_of_the_openapi_document_is_in_the_reference():
    spec = http_api.document()
    reference = http_api.reference()
    documented = sections(reference, "###")
    operations = http_api.operations(spec)
    assert len(operations) > 40
    for method, path, operation in operations:
        section = documented.pop(f"{method} {path}")
        for status in operation["responses"]:
            assert f"| `{status}` |" in section, (method, path, status)
    assert set(documented) == set(spec["components"]["schemas"])
    assert "`POST /api/v3/attachments/tus`" in reference


def test_each_generator_fills_one_reference_page_and_each_page_is_in_the_toctree():
    pages = sorted((DOCS / "reference").glob("*.md"))
    markers = [marker for page in pages
               for marker in re.findall(r"^\{generated\} (\S+)$", page.read_text(), re.MULTILINE)]
    assert sorted(markers) == sorted(GENERATORS)
    index = (DOCS / "reference" / "index.md").read_text()
    assert {page.stem for page in pages} - {"index"} <= set(re.findall(r"^([\w-]+)$", index,
                                                                       re.MULTILINE))


def test_a_marker_of_no_generator_fails_the_build():
    with pytest.raises(ValueError, match="no generator 'setting'"):
        expand_markers("# Settings\n\n{generated} setting\n")
    # mentioned inside a line, a marker is prose
    assert expand_markers("write `{generated} settings` on a line") == (
        "write `{generated} settings` on a line")


def _docs_python() -> str:
    """Every piece of Python a reader of the docs sees: the pages, their example files, and the
    hook specs' docstrings (the hook reference)."""
    texts = [page.read_text() for page in DOCS.rglob("*.md")]
    texts += [example.read_text() for example in (DOCS / "examples").rglob("*.py")]
    texts += [inspect.getdoc(each) or "" for each in vars(hookspecs).values()
              if callable(each) or inspect.ismodule(each)]
    return "\n".join(texts + [hookspecs.__doc__])


def test_the_docs_import_only_affixs_public_names():
    imports = re.findall(r"^\s*from (affix\S*) import (.+)$", _docs_python(), re.MULTILINE)
    assert imports, "the docs show no import of affix"
    for module, names in imports:
        assert module == "affix", f"the docs import from {module}"
        assert set(re.findall(r"\w+", names.split("#")[0])) <= PUBLIC_NAMES


def test_a_link_to_a_missing_page_or_anchor_is_found(tmp_path):
    (tmp_path / "index.html").write_text(
        '<a href="page.html#there">ok</a><a href="page.html#gone">no anchor</a>'
        '<a href="missing.html">no page</a><a href="https://example.org/x">external</a>'
        '<a href="#top">here</a><p id="top"></p>')
    (tmp_path / "page.html").write_text('<h1 id="there">x</h1>')
    assert links.broken_links(tmp_path) == ["index.html: page.html#gone",
                                            "index.html: missing.html"]
