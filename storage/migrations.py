"""Versioned schema migrations for SQLite and PostgreSQL.

The ``schema_version`` table records every migration applied, one row each. A migration's SQL
is frozen here as it was written: it never follows later changes of the models, so an old
database replays exactly what a new one went through. Migrating takes a lock that every node
sharing the database respects (PostgreSQL: an advisory lock held by the migrating transaction;
SQLite: the write lock of a ``BEGIN IMMEDIATE`` transaction), so two nodes starting at once
apply each migration exactly once.
"""
import contextlib
import dataclasses
import re
from collections.abc import Callable, Iterator, Mapping

import peewee

from affix.storage.database import release_connections

VERSION_TABLE = "schema_version"

# one key for every affix node: whoever holds it migrates, the others wait for it and then find
# nothing left to do ("affix" in ASCII)
POSTGRES_MIGRATION_LOCK = 0x6166666978

# the tables of affix's own (plugins keep theirs), parents before children
TABLES = ("users", "api_keys", "attachments", "projects", "roles", "memberships",
          "role_permissions", "work_packages")
# the tables version 3 added
WORK_PACKAGE_ATTRIBUTE_TABLES = ("types", "statuses", "priorities")

# Version 1 is the schema affix created before it had migrations, word for word on SQLite
# (peewee's DDL of the models of then). PostgreSQL came with migrations: it gets 64-bit ids and
# references from the start.
COLUMN_TYPES = {
    "sqlite": {"id": "INTEGER NOT NULL PRIMARY KEY", "ref": "INTEGER", "time": "DATETIME",
               "bool": "INTEGER", "bigint": "INTEGER"},
    "postgresql": {"id": "BIGSERIAL NOT NULL PRIMARY KEY", "ref": "BIGINT", "time": "TIMESTAMP",
                   "bool": "BOOLEAN", "bigint": "BIGINT"},
}
SCHEMA_V1 = """
CREATE TABLE "users" ("id" {id}, "login" VARCHAR(255) NOT NULL, "name" VARCHAR(255) NOT NULL,
 "admin" {bool} NOT NULL, "locked" {bool} NOT NULL);
CREATE UNIQUE INDEX "user_login" ON "users" ("login");
CREATE TABLE "api_keys" ("id" {id}, "user_id" {ref} NOT NULL, "key_hash" VARCHAR(64) NOT NULL,
 "created_at" {time} NOT NULL,
 FOREIGN KEY ("user_id") REFERENCES "users" ("id") ON DELETE CASCADE);
CREATE INDEX "apikey_user_id" ON "api_keys" ("user_id");
CREATE UNIQUE INDEX "apikey_key_hash" ON "api_keys" ("key_hash");
CREATE TABLE "attachments" ("id" {id}, "file_name" TEXT NOT NULL, "file_size" {bigint} NOT NULL,
 "content_type" VARCHAR(255) NOT NULL, "charset" VARCHAR(64), "md5" VARCHAR(32) NOT NULL,
 "description" TEXT NOT NULL, "author_id" {ref} NOT NULL, "container_type" VARCHAR(100),
 "container_id" {bigint}, "status" VARCHAR(32) NOT NULL, "storage_key" VARCHAR(255) NOT NULL,
 "created_at" {time} NOT NULL,
 FOREIGN KEY ("author_id") REFERENCES "users" ("id") ON DELETE RESTRICT);
CREATE INDEX "attachment_author_id" ON "attachments" ("author_id");
CREATE UNIQUE INDEX "attachment_storage_key" ON "attachments" ("storage_key");
CREATE INDEX "attachment_container_type_container_id"
 ON "attachments" ("container_type", "container_id");
CREATE TABLE "projects" ("id" {id}, "identifier" VARCHAR(100) NOT NULL,
 "name" VARCHAR(255) NOT NULL);
CREATE UNIQUE INDEX "project_identifier" ON "projects" ("identifier");
CREATE TABLE "roles" ("id" {id}, "name" VARCHAR(255) NOT NULL);
CREATE UNIQUE INDEX "role_name" ON "roles" ("name");
CREATE TABLE "memberships" ("id" {id}, "user_id" {ref} NOT NULL, "project_id" {ref} NOT NULL,
 "role_id" {ref} NOT NULL,
 FOREIGN KEY ("user_id") REFERENCES "users" ("id") ON DELETE CASCADE,
 FOREIGN KEY ("project_id") REFERENCES "projects" ("id") ON DELETE CASCADE,
 FOREIGN KEY ("role_id") REFERENCES "roles" ("id") ON DELETE CASCADE);
CREATE INDEX "membership_user_id" ON "memberships" ("user_id");
CREATE INDEX "membership_project_id" ON "memberships" ("project_id");
CREATE INDEX "membership_role_id" ON "memberships" ("role_id");
CREATE UNIQUE INDEX "membership_user_id_project_id_role_id"
 ON "memberships" ("user_id", "project_id", "role_id");
CREATE TABLE "role_permissions" ("id" {id}, "role_id" {ref} NOT NULL,
 "permission" VARCHAR(255) NOT NULL,
 FOREIGN KEY ("role_id") REFERENCES "roles" ("id") ON DELETE CASCADE);
CREATE INDEX "rolepermission_role_id" ON "role_permissions" ("role_id");
CREATE UNIQUE INDEX "rolepermission_role_id_permission"
 ON "role_permissions" ("role_id", "permission");
CREATE TABLE "work_packages" ("id" {id}, "project_id" {ref} NOT NULL,
 "subject" VARCHAR(255) NOT NULL, "author_id" {ref} NOT NULL, "created_at" {time} NOT NULL,
 "updated_at" {time} NOT NULL,
 FOREIGN KEY ("project_id") REFERENCES "projects" ("id") ON DELETE CASCADE,
 FOREIGN KEY ("author_id") REFERENCES "users" ("id") ON DELETE RESTRICT);
CREATE INDEX "workpackage_project_id" ON "work_packages" ("project_id");
CREATE INDEX "workpackage_author_id" ON "work_packages" ("author_id");
"""


class MigrationError(Exception):
    """The database cannot be brought to the schema this affix expects."""


def dialect(database: peewee.Database) -> str:
    if isinstance(database, peewee.SqliteDatabase):
        return "sqlite"
    if isinstance(database, peewee.PostgresqlDatabase):
        return "postgresql"
    raise MigrationError(f"affix's schema is made for SQLite and PostgreSQL, "
                         f"not {type(database).__name__}")


def run_script(database: peewee.Database, script: str,
               column_types: Mapping[str, Mapping[str, str]]) -> None:
    """Run the statements of ``script`` with the database's own column types put in."""
    for statement in script.format(**column_types[dialect(database)]).split(";"):
        if statement.strip():
            database.execute_sql(statement)


def create_tables(database: peewee.Database) -> None:
    run_script(database, SCHEMA_V1, COLUMN_TYPES)


# the id column as version 1 made it on SQLite, and as it must be
SQLITE_REUSING_ID = '"id" INTEGER NOT NULL PRIMARY KEY'
SQLITE_UNIQUE_ID = '"id" INTEGER NOT NULL PRIMARY KEY AUTOINCREMENT'


def stop_reusing_ids(database: peewee.Database) -> None:
    """SQLite gives a rowid table's next row max(id) + 1, so deleting the newest attachment
    handed its id to the next upload and a saved link led to another file. AUTOINCREMENT
    never hands out an id twice; a table gets it only when made, hence the rebuild, rows kept
    (the recipe of SQLite's "ALTER TABLE" page). PostgreSQL's sequences never reuse an id."""
    if dialect(database) != "sqlite":
        return
    for table in TABLES:
        (table_sql,) = database.execute_sql(
            "SELECT sql FROM sqlite_master WHERE type = 'table' AND name = ?", (table,)
        ).fetchone()
        index_sqls = [sql for (sql,) in database.execute_sql(
            "SELECT sql FROM sqlite_master WHERE type = 'index' AND tbl_name = ? "
            "AND sql IS NOT NULL", (table,))]
        rebuilt = f"{table}_rebuilt"
        database.execute_sql(
            re.sub(r'^CREATE TABLE "\w+"', f'CREATE TABLE "{rebuilt}"', table_sql)
            .replace(SQLITE_REUSING_ID, SQLITE_UNIQUE_ID))
        database.execute_sql(f'INSERT INTO "{rebuilt}" SELECT * FROM "{table}"')
        database.execute_sql(f'DROP TABLE "{table}"')
        database.execute_sql(f'ALTER TABLE "{rebuilt}" RENAME TO "{table}"')
        for index_sql in index_sqls:
            database.execute_sql(index_sql)


# Version 4: webhook subscriptions and the outbox of their deliveries (affix.storage.outbox).
# Tables made after version 2 never reuse an id from the start.
WEBHOOK_COLUMN_TYPES = {
    "sqlite": {"id": "INTEGER NOT NULL PRIMARY KEY AUTOINCREMENT", "ref": "INTEGER",
               "time": "DATETIME", "bigint": "INTEGER"},
    "postgresql": {"id": "BIGSERIAL NOT NULL PRIMARY KEY", "ref": "BIGINT", "time": "TIMESTAMP",
                   "bigint": "BIGINT"},
}
SCHEMA_V4 = """
CREATE TABLE "webhook_subscriptions" ("id" {id}, "url" TEXT NOT NULL,
 "secret" VARCHAR(255) NOT NULL, "events" TEXT NOT NULL, "created_at" {time} NOT NULL);
CREATE TABLE "webhook_outbox" ("id" {id}, "subscription_id" {ref} NOT NULL,
 "event_id" VARCHAR(36) NOT NULL, "event" VARCHAR(100) NOT NULL,
 "attachment_id" {bigint} NOT NULL, "body" TEXT NOT NULL, "created_at" {time} NOT NULL,
 "attempts" INTEGER NOT NULL, "next_attempt_at" {time} NOT NULL, "lease_until" {time},
 "delivered_at" {time}, "last_error" TEXT);
CREATE INDEX "webhook_outbox_order"
 ON "webhook_outbox" ("subscription_id", "attachment_id", "delivered_at", "id");
CREATE INDEX "webhook_outbox_due" ON "webhook_outbox" ("delivered_at", "next_attempt_at");
"""


def create_webhook_tables(database: peewee.Database) -> None:
    run_script(database, SCHEMA_V4, WEBHOOK_COLUMN_TYPES)


def add_scan_findings(database: peewee.Database) -> None:
    """What a virus scan found in a quarantined attachment, and an index on the status, which
    ``affix scan`` and ``affix quarantine list`` select by."""
    database.execute_sql('ALTER TABLE "attachments" ADD COLUMN "scan_finding" VARCHAR(255)')
    database.execute_sql('CREATE INDEX "attachment_status" ON "attachments" ("status")')


# Version 6: resumable (tus) uploads in progress (affix.storage.resumable), whichever node
# receives their next PATCH. No foreign key to the attachment a finished upload became: the
# attachment may be deleted while its upload's row lives on until it expires.
SCHEMA_V6 = """
CREATE TABLE "resumable_uploads" ("id" {id}, "token" VARCHAR(64) NOT NULL,
 "author_id" {ref} NOT NULL, "upload_length" {bigint} NOT NULL, "received" {bigint} NOT NULL,
 "metadata" TEXT NOT NULL, "file_name" TEXT NOT NULL, "description" TEXT NOT NULL,
 "container_type" VARCHAR(100), "container_id" {bigint}, "storage_key" VARCHAR(255) NOT NULL,
 "multipart_id" VARCHAR(1024), "part_count" INTEGER NOT NULL, "parts_size" {bigint} NOT NULL,
 "attachment_id" {bigint}, "created_at" {time} NOT NULL, "expires_at" {time} NOT NULL,
 "lease_token" VARCHAR(32), "lease_until" {time},
 FOREIGN KEY ("author_id") REFERENCES "users" ("id") ON DELETE RESTRICT);
CREATE UNIQUE INDEX "resumable_upload_token" ON "resumable_uploads" ("token");
CREATE INDEX "resumable_upload_expires_at" ON "resumable_uploads" ("expires_at");
"""


def create_resumable_uploads(database: peewee.Database) -> None:
    run_script(database, SCHEMA_V6, WEBHOOK_COLUMN_TYPES)


# Version 7: what operators need against a leaked key or a user who must go. A key may expire
# and remembers its last use; one user row, made on the first deletion of a user, stands for
# every deleted user as OpenProject's DeletedUser does (the unique partial index keeps it one).
SCHEMA_V7 = """
ALTER TABLE "api_keys" ADD COLUMN "expires_at" {time};
ALTER TABLE "api_keys" ADD COLUMN "last_used_at" {time};
ALTER TABLE "users" ADD COLUMN "is_deleted_user" {bool} NOT NULL DEFAULT FALSE;
CREATE UNIQUE INDEX "user_is_deleted_user" ON "users" ("is_deleted_user")
 WHERE "is_deleted_user";
"""


def add_key_expiry_and_deleted_user(database: peewee.Database) -> None:
    run_script(database, SCHEMA_V7, COLUMN_TYPES)


# Version 8: the tus extensions concatenation and creation-defer-length. ``concat`` is the
# upload's Upload-Concat as HEAD answers it ("partial", or "final;" and the partials' URLs);
# ``joined_into`` the token of the final upload a partial one was joined into (its bytes are
# gone, its row stays until it expires, so that a second final naming it learns why it is
# refused); an upload whose length is deferred keeps the size limit in ``upload_length``.
SCHEMA_V8 = """
ALTER TABLE "resumable_uploads" ADD COLUMN "concat" TEXT;
ALTER TABLE "resumable_uploads" ADD COLUMN "joined_into" VARCHAR(64);
ALTER TABLE "resumable_uploads" ADD COLUMN "length_deferred" {bool} NOT NULL DEFAULT FALSE;
"""


def add_tus_concatenation_and_deferred_length(database: peewee.Database) -> None:
    run_script(database, SCHEMA_V8, COLUMN_TYPES)


@dataclasses.dataclass(frozen=True)
class Migration:
    version: int
    description: str
    apply: Callable[[peewee.Database], None]


# OpenProject's defaults: what a work package is, where it stands, how urgent it is, in the order
# shown: (name, is the default, is a milestone / is closed)
DEFAULT_TYPES = (("Task", True, False), ("Milestone", False, True), ("Phase", False, False),
                 ("Feature", False, False), ("Epic", False, False), ("User story", False, False),
                 ("Bug", False, False))
DEFAULT_STATUSES = (("New", True, False), ("In specification", False, False),
                    ("Specified", False, False), ("Confirmed", False, False),
                    ("To be scheduled", False, False), ("Scheduled", False, False),
                    ("In progress", False, False), ("Developed", False, False),
                    ("In testing", False, False), ("Tested", False, False),
                    ("Test failed", False, False), ("Closed", False, True),
                    ("On hold", False, False), ("Rejected", False, True))
DEFAULT_PRIORITIES = (("Low", False), ("Normal", True), ("High", False), ("Immediate", False))
SCHEMA_V3_TABLES = """
CREATE TABLE "types" ("id" {id}, "name" VARCHAR(255) NOT NULL, "position" INTEGER NOT NULL,
 "color" VARCHAR(7), "is_default" {bool} NOT NULL, "is_milestone" {bool} NOT NULL,
 "created_at" {time} NOT NULL, "updated_at" {time} NOT NULL);
CREATE UNIQUE INDEX "type_name" ON "types" ("name");
CREATE TABLE "statuses" ("id" {id}, "name" VARCHAR(255) NOT NULL, "position" INTEGER NOT NULL,
 "color" VARCHAR(7), "is_default" {bool} NOT NULL, "is_closed" {bool} NOT NULL);
CREATE UNIQUE INDEX "status_name" ON "statuses" ("name");
CREATE TABLE "priorities" ("id" {id}, "name" VARCHAR(255) NOT NULL, "position" INTEGER NOT NULL,
 "color" VARCHAR(7), "is_default" {bool} NOT NULL, "is_active" {bool} NOT NULL);
CREATE UNIQUE INDEX "priority_name" ON "priorities" ("name");
"""
# what version 3 adds to work packages; the references are filled for the rows there are
SCHEMA_V3_WORK_PACKAGE_INDEXES = """
CREATE INDEX "workpackage_type_id" ON "work_packages" ("type_id");
CREATE INDEX "workpackage_status_id" ON "work_packages" ("status_id");
CREATE INDEX "workpackage_priority_id" ON "work_packages" ("priority_id");
"""
SQLITE_WORK_PACKAGES_V3 = """
CREATE TABLE "work_packages_rebuilt" ("id" INTEGER NOT NULL PRIMARY KEY AUTOINCREMENT,
 "project_id" INTEGER NOT NULL, "subject" VARCHAR(255) NOT NULL, "author_id" INTEGER NOT NULL,
 "created_at" DATETIME NOT NULL, "updated_at" DATETIME NOT NULL, "type_id" INTEGER NOT NULL,
 "status_id" INTEGER NOT NULL, "priority_id" INTEGER NOT NULL,
 "lock_version" INTEGER NOT NULL DEFAULT 0,
 FOREIGN KEY ("project_id") REFERENCES "projects" ("id") ON DELETE CASCADE,
 FOREIGN KEY ("author_id") REFERENCES "users" ("id") ON DELETE RESTRICT,
 FOREIGN KEY ("type_id") REFERENCES "types" ("id") ON DELETE RESTRICT,
 FOREIGN KEY ("status_id") REFERENCES "statuses" ("id") ON DELETE RESTRICT,
 FOREIGN KEY ("priority_id") REFERENCES "priorities" ("id") ON DELETE RESTRICT);
INSERT INTO "work_packages_rebuilt" ("id", "project_id", "subject", "author_id", "created_at",
 "updated_at", "type_id", "status_id", "priority_id", "lock_version")
 SELECT "id", "project_id", "subject", "author_id", "created_at", "updated_at",
 (SELECT MIN("id") FROM "types" WHERE "is_default"),
 (SELECT MIN("id") FROM "statuses" WHERE "is_default"),
 (SELECT MIN("id") FROM "priorities" WHERE "is_default"), 0 FROM "work_packages";
DROP TABLE "work_packages";
ALTER TABLE "work_packages_rebuilt" RENAME TO "work_packages";
CREATE INDEX "workpackage_project_id" ON "work_packages" ("project_id");
CREATE INDEX "workpackage_author_id" ON "work_packages" ("author_id");
"""
POSTGRES_WORK_PACKAGES_V3 = """
ALTER TABLE "work_packages"
 ADD COLUMN "type_id" BIGINT REFERENCES "types" ("id") ON DELETE RESTRICT,
 ADD COLUMN "status_id" BIGINT REFERENCES "statuses" ("id") ON DELETE RESTRICT,
 ADD COLUMN "priority_id" BIGINT REFERENCES "priorities" ("id") ON DELETE RESTRICT,
 ADD COLUMN "lock_version" INTEGER NOT NULL DEFAULT 0;
UPDATE "work_packages" SET "type_id" = (SELECT MIN("id") FROM "types" WHERE "is_default"),
 "status_id" = (SELECT MIN("id") FROM "statuses" WHERE "is_default"),
 "priority_id" = (SELECT MIN("id") FROM "priorities" WHERE "is_default");
ALTER TABLE "work_packages" ALTER COLUMN "type_id" SET NOT NULL,
 ALTER COLUMN "status_id" SET NOT NULL, ALTER COLUMN "priority_id" SET NOT NULL;
"""
V3_COLUMN_TYPES = {
    "sqlite": {**COLUMN_TYPES["sqlite"], "id": SQLITE_UNIQUE_ID.split(" ", 1)[1]},
    "postgresql": COLUMN_TYPES["postgresql"],
}


def _run(database: peewee.Database, script: str) -> None:
    for statement in script.split(";"):
        if statement.strip():
            database.execute_sql(statement)


def add_work_package_attributes(database: peewee.Database) -> None:
    """Types, statuses and priorities with OpenProject's defaults, a work package's reference to
    one of each (the defaults for the work packages there are) and its lock version.

    SQLite adds no NOT NULL reference to a table that has rows, so work_packages is rebuilt
    there, keeping the AUTOINCREMENT counter: a rebuilt table would otherwise start counting
    from its largest id and hand a deleted work package's id out again."""
    kind = dialect(database)
    _run(database, SCHEMA_V3_TABLES.format(**V3_COLUMN_TYPES[kind]))
    param = database.param
    for position, (name, default, milestone) in enumerate(DEFAULT_TYPES, start=1):
        database.execute_sql(
            'INSERT INTO "types" ("name", "position", "is_default", "is_milestone", '
            f'"created_at", "updated_at") VALUES ({param}, {param}, {param}, {param}, '
            'CURRENT_TIMESTAMP, CURRENT_TIMESTAMP)', (name, position, default, milestone))
    for position, (name, default, closed) in enumerate(DEFAULT_STATUSES, start=1):
        database.execute_sql(
            'INSERT INTO "statuses" ("name", "position", "is_default", "is_closed") '
            f'VALUES ({param}, {param}, {param}, {param})', (name, position, default, closed))
    for position, (name, default) in enumerate(DEFAULT_PRIORITIES, start=1):
        database.execute_sql(
            'INSERT INTO "priorities" ("name", "position", "is_default", "is_active") '
            f'VALUES ({param}, {param}, {param}, {param})', (name, position, default, True))
    if kind == "postgresql":
        _run(database, POSTGRES_WORK_PACKAGES_V3)
    else:
        counter = database.execute_sql(
            "SELECT seq FROM sqlite_sequence WHERE name = 'work_packages'").fetchone()
        _run(database, SQLITE_WORK_PACKAGES_V3)
        if counter is not None:
            # the rename carried the rebuilt table's counter over: it may only grow
            database.execute_sql("DELETE FROM sqlite_sequence WHERE name = 'work_packages'")
            database.execute_sql(
                "INSERT INTO sqlite_sequence (name, seq) VALUES ('work_packages', ?)",
                (max(counter[0], database.execute_sql(
                    'SELECT COALESCE(MAX("id"), 0) FROM "work_packages"').fetchone()[0]),))
    _run(database, SCHEMA_V3_WORK_PACKAGE_INDEXES)


MIGRATIONS = (
    Migration(1, "create the tables", create_tables),
    Migration(2, "never reuse the id of a deleted row (SQLite)", stop_reusing_ids),
    Migration(3, "types, statuses and priorities of work packages, and their lock version",
              add_work_package_attributes),
    Migration(4, "webhook subscriptions and their outbox", create_webhook_tables),
    Migration(5, "record what a virus scan found; index the status", add_scan_findings),
    Migration(6, "resumable (tus) uploads in progress", create_resumable_uploads),
    Migration(7, "API keys that expire and record their last use; the deleted user",
              add_key_expiry_and_deleted_user),
    Migration(8, "tus: partial and final uploads (concatenation), uploads of deferred length",
              add_tus_concatenation_and_deferred_length),
)
LATEST_VERSION = MIGRATIONS[-1].version


def schema_version(database: peewee.Database) -> int:
    """The version the database is at; 0 when empty. A database that affix made before it had
    migrations holds the tables of version 1 and no version table."""
    if database.table_exists(VERSION_TABLE):
        version: int | None
        (version,) = database.execute_sql(
            f'SELECT MAX("version") FROM "{VERSION_TABLE}"').fetchone()
        return version or 0
    return 1 if database.table_exists("attachments") else 0


def migrate(database: peewee.Database) -> list[Migration]:
    """Bring the database's schema up to date; the migrations it applied, in order.

    Cheap when there is nothing to do: one read, no lock.
    """
    try:
        with database.connection_context():
            if _checked(schema_version(database)) == LATEST_VERSION:
                return []
            with _migration_lock(database):
                # read again under the lock: another node may have migrated meanwhile
                version = _checked(schema_version(database))
                if not database.table_exists(VERSION_TABLE):
                    database.execute_sql(
                        f'CREATE TABLE "{VERSION_TABLE}" ("version" INTEGER NOT NULL PRIMARY KEY, '
                        f'"description" TEXT NOT NULL, "applied_at" TIMESTAMP NOT NULL)')
                    if version:
                        _record(database, MIGRATIONS[version - 1],
                                "(found: made before affix had migrations)")
                pending = [each for each in MIGRATIONS if each.version > version]
                for migration in pending:
                    migration.apply(database)
                    _record(database, migration)
                return pending
    finally:
        release_connections(database)


def _checked(version: int) -> int:
    if version > LATEST_VERSION:
        raise MigrationError(f"the database's schema is at version {version}, newer than this "
                             f"affix knows ({LATEST_VERSION}): upgrade affix")
    return version


def _record(database: peewee.Database, migration: Migration, note: str = "") -> None:
    database.execute_sql(
        f'INSERT INTO "{VERSION_TABLE}" ("version", "description", "applied_at") '
        f'VALUES ({database.param}, {database.param}, CURRENT_TIMESTAMP)',
        (migration.version, f"{migration.description} {note}".strip()))


def take_postgres_schema_lock(database: peewee.Database) -> None:
    """Wait for the lock of schema changes and hold it until the transaction ends: migrations
    take it, and plugins changing their own tables
    (:meth:`affix.storage.models.Catalog.schema_change`)."""
    database.execute_sql("SELECT pg_advisory_xact_lock(%s)", (POSTGRES_MIGRATION_LOCK,))


@contextlib.contextmanager
def _migration_lock(database: peewee.Database) -> Iterator[None]:
    """A transaction that holds the migration lock until it commits or rolls back."""
    if dialect(database) == "postgresql":
        with database.atomic():
            take_postgres_schema_lock(database)
            yield
        return
    # a table rebuild must neither fire ON DELETE CASCADE nor check references half-way; the
    # pragma is ignored inside a transaction, so it comes first, and the check comes at the end
    database.execute_sql("PRAGMA foreign_keys = OFF")
    try:
        with database.atomic("IMMEDIATE"):
            yield
            broken = database.execute_sql("PRAGMA foreign_key_check").fetchall()
            if broken:
                raise MigrationError(f"the migration broke references: {broken}")
    finally:
        database.execute_sql("PRAGMA foreign_keys = ON")
