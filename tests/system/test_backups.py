"""The deploying guide's *Backups*, tried: a backup of SQLite and its blobs taken while a real
server serves, restored into a new data folder, served again."""
import shutil
import subprocess
import sys

import pytest

from support.content import random_bytes
from support.errors import NO_SUCH_ATTACHMENT
from support.http import assert_downloads_as, assert_uploaded, download, upload
from support.processes import COMMAND_TIMEOUT, REPO_ROOT
from support.servers import HIGH_LIMIT, running_server

pytestmark = pytest.mark.system

BACKUP_SQLITE = REPO_ROOT / "deploy" / "backup_sqlite.py"


def backup_sqlite(data_dir, backup_dir) -> str:
    """What ``python3 deploy/backup_sqlite.py DATA_DIR BACKUP_DIR`` prints."""
    finished = subprocess.run([sys.executable, BACKUP_SQLITE, data_dir, backup_dir],
                              capture_output=True, text=True, timeout=COMMAND_TIMEOUT)
    assert finished.returncode == 0, finished.stderr
    return finished.stdout


@pytest.mark.parametrize("databases", ["sqlite"], indirect=True)
def test_a_backup_taken_while_serving_restores_into_a_new_data_folder(
        tmp_path, databases, start_server):
    server = start_server()
    contents = {f"file-{number}.bin": random_bytes(100_000 + number, seed=number)
                for number in range(5)}
    ids = {name: assert_uploaded(upload(server, name, content), name, content)
           for name, content in contents.items()}
    backed_up_rows = server.stored.rows()

    printed = backup_sqlite(tmp_path / "data", tmp_path / "backup")
    later = assert_uploaded(upload(server, "later.bin", b"after the backup"), "later.bin",
                            b"after the backup")

    assert printed == (f"backup_sqlite: {tmp_path / 'data'} backed up into "
                       f"{tmp_path / 'backup'}\n")
    # the guide's restore: the backup is a data folder, copied to where AFFIX_DATA_DIR points
    shutil.copytree(tmp_path / "backup", tmp_path / "restored" / "data")
    with running_server(tmp_path / "restored", databases, HIGH_LIMIT,
                        api_key=server.api_key) as restored:
        for name, content in contents.items():
            assert_downloads_as(restored, ids[name], content)
        missing = download(restored, later)
        assert (missing.status_code, missing.json()["message"]) == (404, NO_SUCH_ATTACHMENT)
        assert restored.stored.rows() == backed_up_rows
        # every blob of those rows, and nothing of staging
        assert sorted(restored.stored.files()) == sorted(row[4] for row in backed_up_rows)


def test_a_backup_of_a_folder_without_a_database_makes_none(tmp_path):
    finished = subprocess.run(
        [sys.executable, BACKUP_SQLITE, tmp_path / "mistyped", tmp_path / "backup"],
        capture_output=True, text=True, timeout=COMMAND_TIMEOUT)

    assert (finished.returncode, finished.stderr) == (
        1, f"backup_sqlite: no database at {tmp_path / 'mistyped' / 'affix.sqlite3'}\n")
    assert not (tmp_path / "mistyped").exists()
