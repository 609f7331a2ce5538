"""Back up the data folder of an affix on SQLite with its blobs in a local folder (the default,
AFFIX_DATA_DIR alone), while affix serves:

    python3 deploy/backup_sqlite.py /srv/affix/var /backup/affix-2026-12-08

The backup is a data folder itself: to restore, stop affix and copy it to where AFFIX_DATA_DIR
points (docs/guides/deploying.md, *Backups*). It needs nothing but Python's standard library.

The database is copied first, the blobs after: an upload stores its blob before it writes its
row, so every row in the copy has its blob on disk by the time the blobs are copied. A blob
copied without a row (an upload that finished in between) is garbage that ``affix gc`` removes
after a restore; a row copied without its blob would be an attachment lost.
"""
import shutil
import sqlite3
import sys
from pathlib import Path

DATABASE = "affix.sqlite3"
BLOBS = "blobs"
# uploads under way: none of them is an attachment yet
STAGING = ".staging"
# how long to wait for a writer that holds SQLite's lock before giving up
BUSY_TIMEOUT_SECONDS = 30


def copy_database(source: Path, target: Path) -> None:
    """A consistent copy taken through SQLite, the write-ahead log's latest transactions
    included, while affix goes on writing: a plain file copy could catch it mid-write."""
    if not source.is_file():
        raise SystemExit(f"backup_sqlite: no database at {source}")
    # read-only: a mistyped folder must never get a new, empty database
    connection = sqlite3.connect(f"{source.as_uri()}?mode=ro", uri=True,
                                 timeout=BUSY_TIMEOUT_SECONDS)
    try:
        connection.execute("VACUUM INTO ?", (str(target),))
    finally:
        connection.close()


def copy_if_still_there(source: str, target: str) -> None:
    """A blob deleted while we copy (cleanup, a deletion) is left out: its row is gone too,
    or goes with the next cleanup."""
    try:
        shutil.copy2(source, target)
    except FileNotFoundError:
        pass


def copy_blobs(source: Path, target: Path) -> None:
    shutil.copytree(source, target, ignore=shutil.ignore_patterns(STAGING),
                    copy_function=copy_if_still_there)


def main(arguments: list[str]) -> None:
    if len(arguments) != 2:
        raise SystemExit("usage: backup_sqlite.py DATA_DIR BACKUP_DIR (a folder not yet there)")
    data_dir, backup_dir = (Path(argument).absolute() for argument in arguments)
    if backup_dir.exists():
        raise SystemExit(f"backup_sqlite: {backup_dir} exists already: name a new folder")
    backup_dir.mkdir(parents=True)
    copy_database(data_dir / DATABASE, backup_dir / DATABASE)
    copy_blobs(data_dir / BLOBS, backup_dir / BLOBS)
    print(f"backup_sqlite: {data_dir} backed up into {backup_dir}")


if __name__ == "__main__":
    main(sys.argv[1:])
