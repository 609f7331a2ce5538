"""Versioned migrations: a fresh database, a database affix made before it had migrations, two
nodes migrating at once, a database newer than the code, ``affix migrate``, and plugins' schema
changes under the same lock."""
import contextlib
import hashlib
import io
import sqlite3
import threading
import time

import falcon.testing
import peewee
import pytest

from affix.app import connect_catalog, create_app, open_catalog
from affix.app.cli.commands import main
from affix.app.testing import basic_auth
from affix.storage.database import release_connections
from affix.storage.migrations import (
    LATEST_VERSION, MIGRATIONS, TABLES, VERSION_TABLE, MigrationError, create_tables, migrate,
    schema_version,
)
from affix.storage.resumable import ResumableUploads
from support.bodies import upload_body
from support.defaults import FROZEN_NOW
from support.errors import hal_error
from support.migrations import APPLIED_ALL, UP_TO_DATE

LOCK_WAIT_TIMEOUT = 30
PLUGIN_TABLE = "plugin_things"


def recorded_versions(database):
    with database.connection_context():
        return [tuple(row) for row in database.execute_sql(
            f'SELECT "version", "description" FROM "{VERSION_TABLE}" ORDER BY "version"')]


def affix_migrate(environ):
    out = io.StringIO()
    status = main(["migrate"], environ=environ, out=out)
    return status, out.getvalue()


def test_latest_version_is_the_last_migration():
    assert [each.version for each in MIGRATIONS] == [1, 2, 3, 4, 5, 6, 7, 8] and LATEST_VERSION == 8


def test_a_fresh_database_gets_every_migration_once(settings):
    database = connect_catalog(settings).database

    assert migrate(database) == list(MIGRATIONS)
    assert migrate(database) == []
    assert recorded_versions(database) == [(each.version, each.description) for each in MIGRATIONS]
    with database.connection_context():
        assert set(TABLES) | {VERSION_TABLE} <= set(database.get_tables())


def test_affix_migrate_says_what_it_applied_and_then_that_nothing_is_left(tmp_path, databases):
    environ = databases.environ(tmp_path / "data")

    assert affix_migrate(environ) == (0, APPLIED_ALL)
    assert affix_migrate(environ) == (0, UP_TO_DATE)


def test_two_nodes_migrating_one_fresh_database_at_once_apply_each_migration_once(settings):
    """Two processes' worth of connections: each thread opens the database on its own."""
    start = threading.Barrier(2)
    applied, failures = [], []

    def node():
        database = connect_catalog(settings).database
        start.wait()
        try:
            applied.append(migrate(database))
        except Exception as error:  # noqa: BLE001 (reported by the assertion below)
            failures.append(error)

    threads = [threading.Thread(target=node) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert failures == []
    # one node applied everything; the other, once it had the lock, found nothing left to do
    assert sorted(applied, key=len) == [[], list(MIGRATIONS)]
    assert recorded_versions(connect_catalog(settings).database) == [
        (each.version, each.description) for each in MIGRATIONS]


def test_a_database_newer_than_this_affix_is_refused(tmp_path, databases, capsys):
    environ = databases.environ(tmp_path / "data")
    settings = databases.settings(tmp_path / "data")
    database = open_catalog(settings).database
    with database.connection_context():
        database.execute_sql(
            f'INSERT INTO "{VERSION_TABLE}" '
            f'VALUES ({LATEST_VERSION + 1}, \'from the future\', CURRENT_TIMESTAMP)')

    with pytest.raises(MigrationError):
        migrate(database)
    assert affix_migrate(environ) == (1, "")
    assert capsys.readouterr().err == (
        f"affix: error: the database's schema is at version {LATEST_VERSION + 1}, newer than "
        f"this affix knows ({LATEST_VERSION}): upgrade affix\n")


# --- SQLite: the tables that affix made before it had migrations ------------------------------

def legacy_sqlite_database(settings):
    """The tables of version 1, as affix made them before it had migrations: no version table,
    and ids that SQLite hands out again."""
    settings.data_dir.mkdir()
    catalog = connect_catalog(settings)
    with catalog.database.connection_context():
        create_tables(catalog.database)
    return catalog


# a key of Ada's, stored as every version stored keys: as the hash alone
ADA_KEY = "0123456789abcdef" * 4
# Ada the admin and her key, written with the columns of version 1: the models of today have
# columns that older versions lack
ADA_OF_VERSION_1 = (
    """INSERT INTO "users" ("login", "name", "admin", "locked")
       VALUES ('ada', 'Ada', TRUE, FALSE)""",
    f"""INSERT INTO "api_keys" ("user_id", "key_hash", "created_at")
        VALUES (1, '{hashlib.sha256(ADA_KEY.encode()).hexdigest()}', '2014-05-21 08:51:20')""",
)


def table_sqls(path):
    with contextlib.closing(sqlite3.connect(path)) as database:
        return dict(database.execute(
            "SELECT name, sql FROM sqlite_master WHERE type IN ('table', 'index') "
            "AND name NOT LIKE 'sqlite_%'"))


@pytest.mark.sqlite_only("PostgreSQL never had a database made without migrations, nor ids "
                         "that come back; test_resources checks ids on both databases")
def test_an_old_sqlite_database_is_upgraded_with_its_rows_and_stops_reusing_ids(
        tmp_path, databases, plugin_manager):
    settings = databases.settings(tmp_path / "data")
    old = legacy_sqlite_database(settings)
    with old.database.connection_context():
        for statement in ADA_OF_VERSION_1:
            old.database.execute_sql(statement)
        for number in (1, 2, 3):
            old.Attachment.create(
                file_name=f"{number}.txt", file_size=number, content_type="text/plain",
                md5="0" * 32, author=1, storage_key=f"key-{number}", created_at=FROZEN_NOW)
        assert schema_version(old.database) == 1
    old.database.close_all()

    client = falcon.testing.TestClient(
        create_app(settings, plugin_manager=plugin_manager, clock=lambda: FROZEN_NOW))

    # the old tables were taken for version 1, not made again, and kept their rows
    assert recorded_versions(old.database) == [
        (1, "create the tables (found: made before affix had migrations)"),
        *((each.version, each.description) for each in MIGRATIONS[1:])]
    with old.database.connection_context():
        assert [(each.id, each.file_name) for each in old.Attachment.select().order_by(
            old.Attachment.id)] == [(1, "1.txt"), (2, "2.txt"), (3, "3.txt")]
    assert all("AUTOINCREMENT" in table_sqls(settings.data_dir / "affix.sqlite3")[table]
               for table in TABLES)
    # the key issued before the upgrade still works; the newest attachment's id, once
    # deleted, is never given again
    auth = {"Authorization": basic_auth(ADA_KEY)}
    assert client.simulate_delete("/api/v3/attachments/3", headers=auth).status_code == 204
    body, content_type = upload_body(b'{"fileName": "4.txt"}', b"four")
    uploaded = client.simulate_post("/api/v3/attachments", body=body,
                                    headers={**auth, "Content-Type": content_type})
    assert uploaded.status_code == 200
    assert uploaded.json["id"] == 4
    assert client.simulate_get("/api/v3/attachments/3", headers=auth).json == hal_error(
        "NotFound", "The specified attachment does not exist.")


@pytest.mark.sqlite_only("compares with the DDL that SQLite keeps")
def test_an_upgraded_sqlite_database_has_the_schema_of_a_new_one(tmp_path, databases):
    new = databases.settings(tmp_path / "new")
    open_catalog(new)
    old = databases.settings(tmp_path / "old")
    legacy_sqlite_database(old).database.close_all()
    open_catalog(old)

    assert table_sqls(old.data_dir / "affix.sqlite3") == table_sqls(new.data_dir / "affix.sqlite3")


# --- version 3: types, statuses, priorities, lock versions -----------------------------------

def database_at(settings, version, statements):
    """A database as affix left it at ``version``, with the rows ``statements`` insert."""
    settings.data_dir.mkdir()
    database = connect_catalog(settings).database
    with database.connection_context(), database.atomic():
        database.execute_sql(
            f'CREATE TABLE "{VERSION_TABLE}" ("version" INTEGER NOT NULL PRIMARY KEY, '
            '"description" TEXT NOT NULL, "applied_at" TIMESTAMP NOT NULL)')
        for migration in MIGRATIONS[:version]:
            migration.apply(database)
            database.execute_sql(
                f'INSERT INTO "{VERSION_TABLE}" VALUES ({migration.version}, '
                f"'{migration.description}', CURRENT_TIMESTAMP)")
        for statement in statements:
            database.execute_sql(statement)
    database.close()
    return database


def database_at_version_2(settings):
    """A database as affix left it at version 2, before work packages had types."""
    return database_at(settings, 2, (
                """INSERT INTO "users" ("login", "name", "admin", "locked")
                   VALUES ('ada', 'Ada', TRUE, FALSE)""",
                """INSERT INTO "projects" ("identifier", "name") VALUES ('demo', 'Demo')""",
                *(f"""INSERT INTO "work_packages" ("project_id", "subject", "author_id",
                      "created_at", "updated_at")
                      VALUES (1, 'Roof {number}', 1, '2014-05-21 08:51:20',
                              '2014-05-21 08:51:20')""" for number in (1, 2)),
                # the newest work package is gone: its id must not come back
                'DELETE FROM "work_packages" WHERE "id" = 2'))


def test_version_3_gives_existing_work_packages_the_defaults_and_never_reuses_their_ids(
        tmp_path, databases):
    settings = databases.settings(tmp_path / "data")
    database = database_at_version_2(settings)

    assert migrate(database) == list(MIGRATIONS[2:])

    catalog = connect_catalog(settings)
    with catalog.database.connection_context():
        assert [(t.name, t.position, t.is_default, t.is_milestone) for t in
                catalog.Type.select().order_by(catalog.Type.position)] == [
            ("Task", 1, True, False), ("Milestone", 2, False, True), ("Phase", 3, False, False),
            ("Feature", 4, False, False), ("Epic", 5, False, False),
            ("User story", 6, False, False), ("Bug", 7, False, False)]
        assert [(s.name, s.is_default, s.is_closed) for s in
                catalog.Status.select().order_by(catalog.Status.position)] == [
            ("New", True, False), ("In specification", False, False),
            ("Specified", False, False), ("Confirmed", False, False),
            ("To be scheduled", False, False), ("Scheduled", False, False),
            ("In progress", False, False), ("Developed", False, False),
            ("In testing", False, False), ("Tested", False, False),
            ("Test failed", False, False), ("Closed", False, True), ("On hold", False, False),
            ("Rejected", False, True)]
        assert [(p.name, p.is_default, p.is_active) for p in
                catalog.Priority.select().order_by(catalog.Priority.position)] == [
            ("Low", False, True), ("Normal", True, True), ("High", False, True),
            ("Immediate", False, True)]
        (work_package,) = catalog.WorkPackage.select()
        assert (work_package.id, work_package.subject, work_package.type.name,
                work_package.status.name, work_package.priority.name,
                work_package.lock_version) == (1, "Roof 1", "Task", "New", "Normal", 0)
        added = catalog.WorkPackage.create(
            project=1, subject="Roof 3", author=1, created_at=FROZEN_NOW, updated_at=FROZEN_NOW,
            type=work_package.type, status=work_package.status,
            priority=work_package.priority)
        assert added.id == 3
        # every reference is required
        with pytest.raises(peewee.IntegrityError), catalog.database.atomic():
            catalog.database.execute_sql('UPDATE "work_packages" SET "type_id" = NULL')


# --- PostgreSQL out of reach ------------------------------------------------------------------

@pytest.mark.postgresql_only("test_robustness holds SQLite's lock for the same answer")
def test_a_dropped_postgresql_database_answers_503(client, people, settings, postgres_server):
    assert client.simulate_get("/api/v3", headers=people.auth("ada")).status_code == 200

    postgres_server.drop_database(settings.database_url)
    response = client.simulate_get("/api/v3", headers=people.auth("ada"))

    assert response.status_code == 503
    assert response.json["errorIdentifier"] == (
        "urn:openproject-org:api:v3:errors:ServiceUnavailable")


@pytest.fixture
def new_catalog(settings):
    """Independent handles on the test's database, as separate workers hold them; their
    connections are closed at the end."""
    made = []

    def make():
        made.append(connect_catalog(settings))
        return made[-1]
    yield make
    for catalog in made:
        release_connections(catalog.database)


def plugin_model(catalog):
    """A model of a plugin's own table, bound to ``catalog``'s database as a plugin binds it."""
    class Thing(peewee.Model):
        title = peewee.CharField()

        class Meta:
            database = catalog.database
            table_name = PLUGIN_TABLE
    return Thing


def create_plugin_table(catalog):
    with catalog.schema_change():
        catalog.database.create_tables([plugin_model(catalog)], safe=True)


def plugin_table_exists(catalog) -> bool:
    with catalog.database.connection_context():
        return PLUGIN_TABLE in catalog.database.get_tables()


def await_waiting_lock(database) -> str:
    """The type of the first lock some session waits for, once one does."""
    deadline = time.monotonic() + LOCK_WAIT_TIMEOUT
    with database.connection_context():
        while time.monotonic() < deadline:
            waiting = database.execute_sql(
                "SELECT locktype FROM pg_locks WHERE NOT granted").fetchall()
            if waiting:
                return waiting[0][0]
            time.sleep(0.01)
    pytest.fail(f"no session waited for a lock within {LOCK_WAIT_TIMEOUT} s")


@pytest.mark.postgresql_only("SQLite's write lock makes a second CREATE TABLE wait for the first "
                             "and then find the table; the race is PostgreSQL's")
def test_two_workers_creating_a_plugins_table_at_once_take_turns(new_catalog):
    first, second = new_catalog(), new_catalog()
    failures = []

    def second_worker():
        try:
            create_plugin_table(second)
        except Exception as error:  # noqa: BLE001 (reported by the assertion below)
            failures.append(error)

    worker = threading.Thread(target=second_worker)
    with first.schema_change():
        first.database.create_tables([plugin_model(first)], safe=True)
        worker.start()
        # without the lock the second would wait on the first's new catalogue row instead, and
        # fail on its unique index once the first commits
        assert await_waiting_lock(new_catalog().database) == "advisory"
    worker.join()

    assert failures == []
    assert plugin_table_exists(first)


def test_a_schema_change_opens_a_connection_only_when_none_is_open(new_catalog):
    catalog = new_catalog()
    with catalog.schema_change():
        assert not catalog.database.is_closed()
    assert catalog.database.is_closed()

    catalog.database.connect()
    with catalog.schema_change():
        pass
    assert not catalog.database.is_closed()
    catalog.database.close()


def test_a_failed_schema_change_leaves_no_table(new_catalog):
    catalog = new_catalog()
    with pytest.raises(RuntimeError, match="the plugin gave up"):
        with catalog.schema_change():
            catalog.database.create_tables([plugin_model(catalog)], safe=True)
            raise RuntimeError("the plugin gave up")
    assert not plugin_table_exists(catalog)


def test_a_schema_change_inside_a_transaction_ends_with_it(new_catalog):
    """As when a command asks the plugins for their container types inside its own
    transaction: the table is committed, or rolled back, with that transaction."""
    catalog = new_catalog()
    with catalog.database.connection_context():
        with pytest.raises(RuntimeError, match="the command failed"):
            with catalog.write_transaction():
                create_plugin_table(catalog)
                assert PLUGIN_TABLE in catalog.database.get_tables()
                raise RuntimeError("the command failed")
        assert PLUGIN_TABLE not in catalog.database.get_tables()

        with catalog.write_transaction():
            create_plugin_table(catalog)
        assert not catalog.database.is_closed()
    assert plugin_table_exists(catalog)


def test_version_6_makes_the_table_of_resumable_uploads_as_its_model_has_it(settings):
    catalog = connect_catalog(settings)
    migrate(catalog.database)
    model = ResumableUploads(catalog).ResumableUpload
    with catalog.database.connection_context():
        columns = {column.name: column.null
                   for column in catalog.database.get_columns("resumable_uploads")}
        indexes = {index.name: (index.columns, index.unique)
                   for index in catalog.database.get_indexes("resumable_uploads")}
    assert columns == {field.column_name: field.null for field in model._meta.sorted_fields}
    assert indexes["resumable_upload_token"] == (["token"], True)
    assert indexes["resumable_upload_expires_at"] == (["expires_at"], False)


# --- version 7: keys that expire and record their last use; the deleted user ----------------

def test_version_7_gives_users_and_keys_the_columns_their_models_have(settings):
    catalog = connect_catalog(settings)
    migrate(catalog.database)
    with catalog.database.connection_context():
        for model in (catalog.User, catalog.ApiKey):
            columns = {column.name: column.null
                       for column in catalog.database.get_columns(model._meta.table_name)}
            assert columns == {field.column_name: field.null
                               for field in model._meta.sorted_fields}
        indexes = {index.name: (index.columns, index.unique)
                   for index in catalog.database.get_indexes("users")}
    assert indexes["user_is_deleted_user"] == (["is_deleted_user"], True)


def test_version_7_allows_one_deleted_user_and_any_number_of_others(settings):
    catalog = open_catalog(settings)
    User = catalog.User
    with catalog.database.connection_context():
        User.create(login="ada", name="Ada")
        User.create(login="bob", name="Bob")
        User.create(login="gone", name="Deleted user", locked=True, is_deleted_user=True)
        with pytest.raises(peewee.IntegrityError):
            User.create(login="gone too", name="Deleted user", locked=True,
                        is_deleted_user=True)


def test_a_key_issued_before_version_7_never_expires_and_still_works(
        tmp_path, databases, plugin_manager):
    settings = databases.settings(tmp_path / "data")
    database_at(settings, 6, ADA_OF_VERSION_1)

    client = falcon.testing.TestClient(
        create_app(settings, plugin_manager=plugin_manager, clock=lambda: FROZEN_NOW))

    response = client.simulate_get("/api/v3", headers={"Authorization": f"Bearer {ADA_KEY}"})
    assert response.status_code == 200
    catalog = connect_catalog(settings)
    with catalog.database.connection_context():
        assert [(k.expires_at, k.last_used_at) for k in catalog.ApiKey.select()] == [
            (None, FROZEN_NOW)]
        assert [u.is_deleted_user for u in catalog.User.select()] == [False]
