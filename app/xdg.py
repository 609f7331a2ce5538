"""The XDG base folders that both the server's and the client's files are found in."""
from pathlib import Path


def xdg_folder(environ, variable, *below_home) -> Path:
    """An XDG base folder: ``$variable``, else its default below ``$HOME``."""
    return Path(environ.get(variable) or Path(environ.get("HOME", "~"), *below_home)).expanduser()
