"""A real filesystem of a given size, for tests of what a full disk does (``system`` tier)."""
import contextlib
import os
import subprocess
from pathlib import Path

import pytest


@contextlib.contextmanager
def small_disk(path: Path, size: int, inodes: int | None = None):
    """A real filesystem of ``size`` bytes at ``path`` (a tmpfs, which only root may mount),
    for tests of what a full disk does; with ``inodes``, room for that many files and folders
    in all, its own root folder included."""
    if os.geteuid() != 0:
        pytest.skip("mounting a small filesystem needs root (CI runs as root)")
    path.mkdir(parents=True)
    options = f"size={size}" + ("" if inodes is None else f",nr_inodes={inodes}")
    subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(path)], check=True)
    try:
        yield path
    finally:
        subprocess.run(["umount", "--lazy", str(path)], check=True)
