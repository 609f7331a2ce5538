"""affix's Sphinx extension: the references written from the code's own definitions.

A reference page holds a marker line, ``{generated} settings`` (one of :data:`GENERATORS`),
which is replaced, as Sphinx reads the page, by the Markdown that generator writes from the code.
The generators are plain functions returning Markdown, so the tests check them without a build.
"""
import re
from typing import TYPE_CHECKING

from affix_docs import cli, errors, http_api, metrics, settings

if TYPE_CHECKING:  # the generators run without Sphinx, in the tests
    from sphinx.application import Sphinx

GENERATORS = {
    "settings": settings.reference,
    "cli": cli.reference,
    "metrics": metrics.reference,
    "errors": errors.reference,
    "http-api": http_api.reference,
}
# a line of its own, so that prose can mention the marker's form without being replaced
MARKER = re.compile(r"^\{generated\} (?P<name>[\w-]+)$", re.MULTILINE)


class UnknownGenerator(ValueError):
    """A marker names no generator: a warning, so a build with -W fails naming the page."""


def expand_markers(text: str) -> str:
    """``text`` with each marker line replaced by its generator's Markdown."""

    def generated(match: re.Match) -> str:
        name = match["name"]
        if name not in GENERATORS:
            raise UnknownGenerator(f"no generator {name!r}: one of {', '.join(GENERATORS)}")
        return GENERATORS[name]()

    return MARKER.sub(generated, text)


def _on_source_read(app: "Sphinx", docname: str, source: list) -> None:
    from sphinx.util import logging

    try:
        source[0] = expand_markers(source[0])
    except UnknownGenerator as error:
        logging.getLogger(__name__).warning(str(error), location=docname)


def setup(app: "Sphinx") -> dict:
    app.connect("source-read", _on_source_read)
    # the generators read the code as it is: a page is written anew at every build
    return {"parallel_read_safe": True, "parallel_write_safe": True, "env_version": 1}
