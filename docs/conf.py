"""Sphinx configuration of affix's documentation: MyST Markdown pages, the Furo theme, the
references written from the code by the local extension ``affix_docs`` (docs/_ext)."""
import importlib.metadata
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent / "_ext"))

project = "affix"
author = "affix's authors"
copyright = "affix's authors"
release = importlib.metadata.version("affix")
version = release

extensions = [
    "myst_parser",
    "sphinx.ext.autodoc",
    "affix_docs",
]
source_suffix = {".md": "markdown"}
root_doc = "index"
# _generated/ holds figure files that pages include, never pages of their own
exclude_patterns = ["_build", "_ext", "_generated"]

# every cross-reference must resolve: a renamed setting, command or class is a broken build
nitpicky = True
myst_heading_anchors = 3
myst_enable_extensions = ["colon_fence", "deflist"]

autodoc_member_order = "bysource"
# hook specs are read for their parameters and docstrings: types stay in the signatures, where
# the names of other packages (falcon, peewee) need no target of their own
autodoc_typehints = "signature"
autodoc_preserve_defaults = True

html_theme = "furo"
html_title = f"affix {release}"
html_static_path: list[str] = []

# Names in signatures that have no page here: other packages' (no inventory is fetched: the
# build needs no network), and affix's own that are not its public API (the models a hook is
# handed, under TYPE_CHECKING in the hook specs; the parts behind Settings and compose)
nitpick_ignore_regex = [
    ("py:class", r"(collections\.abc|pathlib|falcon|peewee|pluggy)\..+"),
    ("py:class", r"(Attachment|Catalog|Project|User|Services)"),
    ("py:class", r"affix\.(app\.composition\.Services|plugins\.containers\.ContainerT"
                 r"|plugins\.manager\.PluginManager|storage\.s3\.S3Options"
                 r"|plugins\.clamav\.ScanOptions|app\.config_file\.ConfigFile)"),
]
