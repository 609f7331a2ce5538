"""The example plugin package in ``tests/plugin_packages/affix-meetings``, as pip builds it."""
import shutil
from pathlib import Path

from .processes import REPO_ROOT

MEETINGS_SOURCE = REPO_ROOT / "tests" / "plugin_packages" / "affix-meetings"


def meetings_source_copy(tmp_path_factory) -> Path:
    """A copy of the package's source to build: building writes an egg-info folder next to the
    sources, which must not land in the work tree."""
    source = tmp_path_factory.mktemp("source") / MEETINGS_SOURCE.name
    shutil.copytree(MEETINGS_SOURCE, source)
    return source
