"""What affix has stored, read back for a test to assert: attachment rows and blob files, each
attachment's container, work packages, roles."""
import os
import re
from pathlib import Path

# what every blob store names a blob: its fan-out folder, then a random token starting with it
STORAGE_KEY = re.compile(r"([0-9a-f]{2})/\1[0-9a-f]{30}")


class Stored:
    """What affix holds on disk: attachment rows and every file under the blob folder."""

    def __init__(self, catalog, blob_root: Path):
        self.catalog = catalog
        self.blob_root = blob_root

    def rows(self):
        with self.catalog.database.connection_context():
            return [
                (a.id, a.file_name, a.file_size, a.md5, a.storage_key)
                for a in self.catalog.Attachment.select().order_by(self.catalog.Attachment.id)
            ]

    def files(self):
        """Every file below the blob root, staging included, with its bytes, in path order."""
        # os.walk, not Path.rglob: a blob root may have hundreds of fan-out folders, and a test
        # may snapshot it hundreds of times (functional/test_fuzz.py does)
        paths = [Path(folder, name) for folder, _, names in os.walk(self.blob_root)
                 for name in names]
        return {
            path.relative_to(self.blob_root).as_posix(): path.read_bytes()
            for path in sorted(paths) if path.is_file()
        }

    def snapshot(self):
        return self.rows(), self.files()


def containers(catalog):
    """Each attachment's (container type, container id), by attachment id."""
    with catalog.database.connection_context():
        return {a.id: (a.container_type, a.container_id) for a in catalog.Attachment.select()}


def work_packages(catalog):
    """(id, subject, project id, author id) of every work package."""
    with catalog.database.connection_context():
        WorkPackage = catalog.WorkPackage
        return [(w.id, w.subject, w.project_id, w.author_id)
                for w in WorkPackage.select().order_by(WorkPackage.id)]


def roles(catalog):
    """Each role with its permissions, sorted."""
    with catalog.database.connection_context():
        return {role.name: sorted(p.permission for p in role.permissions)
                for role in catalog.Role.select()}
