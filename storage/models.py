"""The metadata models; storage.migrations makes and changes their tables.

Model classes are made per database by :class:`Catalog` rather than bound to a module-level
database, so two affix apps in one process (different databases) never share state.
"""
import contextlib
import datetime
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any, TypeVar

import peewee

from affix.storage.database import AffixSqliteDatabase
from affix.storage.migrations import dialect, take_postgres_schema_lock

# ids are 64-bit integers in every database we support; a larger number names no row, and
# asking a driver for it raises instead of finding nothing
MAX_ID = 2**63 - 1


# An attachment's status, as OpenProject names them (what each allows:
# affix.app.attachments.lifecycle).
# A direct upload from its preparation until its completion: no bytes affix has checked
PREPARED = "prepared"
UPLOADED = "uploaded"
SCANNED = "scanned"
QUARANTINED = "quarantined"
RESCAN = "rescan"
STATUSES = (PREPARED, UPLOADED, SCANNED, QUARANTINED, RESCAN)


def is_valid_id(record_id: int) -> bool:
    return 0 < record_id <= MAX_ID


class BaseModel(peewee.Model):
    """What every model shares. The model classes here are bound to no database: each
    :class:`Catalog` binds subclasses of its own (of the same names), so two affix apps in one
    process (different databases) never share state, and ``isinstance(row, Attachment)`` holds
    for a row of any catalogue."""
    id = peewee.BigAutoField()


M = TypeVar("M", bound=BaseModel)


class User(BaseModel):
    login = peewee.CharField(max_length=255, unique=True)
    name = peewee.CharField(max_length=255)
    admin = peewee.BooleanField(default=False)
    locked = peewee.BooleanField(default=False)
    # the one locked user that stands for every deleted user: see affix.app.accounts.management
    is_deleted_user = peewee.BooleanField(default=False)

    class Meta:
        table_name = "users"


class ApiKey(BaseModel):
    user = peewee.ForeignKeyField(User, backref="api_keys", on_delete="CASCADE")
    # sha256 of the key: keys are random 256-bit secrets, so a fast hash is enough and
    # the plain key is never stored
    key_hash = peewee.CharField(max_length=64, unique=True)
    created_at = peewee.DateTimeField()
    # None: the key never expires
    expires_at = peewee.DateTimeField(null=True)
    # written at most once per affix.app.accounts.auth.LAST_USE_PRECISION
    last_used_at = peewee.DateTimeField(null=True)

    class Meta:
        table_name = "api_keys"


class Project(BaseModel):
    identifier = peewee.CharField(max_length=100, unique=True)
    name = peewee.CharField(max_length=255)

    class Meta:
        table_name = "projects"


class Role(BaseModel):
    name = peewee.CharField(max_length=255, unique=True)

    class Meta:
        table_name = "roles"


class RolePermission(BaseModel):
    role = peewee.ForeignKeyField(Role, backref="permissions", on_delete="CASCADE")
    permission = peewee.CharField(max_length=255)

    class Meta:
        table_name = "role_permissions"
        indexes = ((("role", "permission"), True),)


class Membership(BaseModel):
    user = peewee.ForeignKeyField(User, backref="memberships", on_delete="CASCADE")
    project = peewee.ForeignKeyField(Project, backref="memberships", on_delete="CASCADE")
    role = peewee.ForeignKeyField(Role, backref="memberships", on_delete="CASCADE")

    class Meta:
        table_name = "memberships"
        indexes = ((("user", "project", "role"), True),)


class Type(BaseModel):
    name = peewee.CharField(max_length=255, unique=True)
    position = peewee.IntegerField()
    color = peewee.CharField(max_length=7, null=True)
    is_default = peewee.BooleanField(default=False)
    is_milestone = peewee.BooleanField(default=False)
    created_at = peewee.DateTimeField()
    updated_at = peewee.DateTimeField()

    class Meta:
        table_name = "types"


class Status(BaseModel):
    name = peewee.CharField(max_length=255, unique=True)
    position = peewee.IntegerField()
    color = peewee.CharField(max_length=7, null=True)
    is_default = peewee.BooleanField(default=False)
    is_closed = peewee.BooleanField(default=False)

    class Meta:
        table_name = "statuses"


class Priority(BaseModel):
    name = peewee.CharField(max_length=255, unique=True)
    position = peewee.IntegerField()
    color = peewee.CharField(max_length=7, null=True)
    is_default = peewee.BooleanField(default=False)
    is_active = peewee.BooleanField(default=True)

    class Meta:
        table_name = "priorities"


class WorkPackage(BaseModel):
    project = peewee.ForeignKeyField(Project, backref="work_packages", on_delete="CASCADE")
    subject = peewee.CharField(max_length=255)
    author = peewee.ForeignKeyField(User, backref="work_packages", on_delete="RESTRICT")
    created_at = peewee.DateTimeField()
    updated_at = peewee.DateTimeField()
    type = peewee.ForeignKeyField(Type, backref="work_packages", on_delete="RESTRICT")
    status = peewee.ForeignKeyField(Status, backref="work_packages", on_delete="RESTRICT")
    priority = peewee.ForeignKeyField(Priority, backref="work_packages",
                                      on_delete="RESTRICT")
    # OpenProject's optimistic lock: a change names the version it was made on
    lock_version = peewee.IntegerField(default=0)

    class Meta:
        table_name = "work_packages"


class Attachment(BaseModel):
    file_name = peewee.TextField()
    file_size = peewee.BigIntegerField()
    content_type = peewee.CharField(max_length=255)
    # the text encoding libmagic found, for serving text with a charset
    charset = peewee.CharField(max_length=64, null=True)
    md5 = peewee.CharField(max_length=32)
    description = peewee.TextField(default="")
    author = peewee.ForeignKeyField(User, backref="attachments", on_delete="RESTRICT")
    container_type = peewee.CharField(max_length=100, null=True)
    container_id = peewee.BigIntegerField(null=True)
    # see affix.app.attachments.lifecycle
    status = peewee.CharField(max_length=32, default=UPLOADED, index=True)
    # the signature a virus scan found, for a quarantined attachment
    scan_finding = peewee.CharField(max_length=255, null=True)
    storage_key = peewee.CharField(max_length=255, unique=True)
    created_at = peewee.DateTimeField()

    class Meta:
        table_name = "attachments"
        indexes = ((("container_type", "container_id"), False),)


def bind_model(model: type[M], database: peewee.Database,
               bound: Mapping[type[BaseModel], type[BaseModel]]) -> type[M]:
    """A subclass of ``model`` bound to ``database``, of the same name, each foreign key
    pointing at the subclass ``bound`` holds for its target."""
    namespace: dict[str, object] = {
        "__module__": model.__module__, "__qualname__": model.__qualname__,
        "__doc__": model.__doc__,
        # a table's name is not inherited
        "Meta": type("Meta", (), {"database": database, "table_name": model._meta.table_name}),
    }
    for field in model._meta.sorted_fields:
        if isinstance(field, peewee.ForeignKeyField):
            # an inherited foreign key would point at the unbound target (and lose its
            # backref's name): each gets one of its own
            foreign_key = peewee.ForeignKeyField(
                bound[field.rel_model], backref=field.backref, on_delete=field.on_delete,
                null=field.null, index=field.index, unique=field.unique)
            # in the declared field's place among the columns, not after them
            foreign_key._sort_key = field._sort_key  # type: ignore[attr-defined]
            namespace[field.name] = foreign_key
    return type(model.__name__, (model,), namespace)


class Catalog:
    """The model classes of one database, and the queries the service needs from them."""

    def __init__(self, database: peewee.Database) -> None:
        self.database = database
        # SQL built once: see _statement
        self._statements: dict[object, Any] = {}
        # what each model of MODELS is in this catalogue, for the tables of other modules
        # whose foreign keys point at them
        self.bound: dict[type[BaseModel], type[BaseModel]] = {}
        self.User = self._bind(User)
        self.ApiKey = self._bind(ApiKey)
        self.Project = self._bind(Project)
        self.Role = self._bind(Role)
        self.RolePermission = self._bind(RolePermission)
        self.Membership = self._bind(Membership)
        self.Type = self._bind(Type)
        self.Status = self._bind(Status)
        self.Priority = self._bind(Priority)
        self.WorkPackage = self._bind(WorkPackage)
        self.Attachment = self._bind(Attachment)
        self.models = list(self.bound.values())

    def _bind(self, model: type[M]) -> type[M]:
        bound = bind_model(model, self.database, self.bound)
        self.bound[model] = bound
        return bound

    @staticmethod
    def by_id(query: "peewee.ModelSelect[M]", model: type[M], record_id: int) -> M | None:
        """The row of ``query`` (a select on ``model``) with ``record_id``, or None."""
        if not is_valid_id(record_id):
            return None
        row: M | None = query.where(model.id == record_id).first()
        return row

    def get(self, model: type[M], record_id: int) -> M | None:
        """The ``model`` row with ``record_id``, or None."""
        return self.by_id(model.select(), model, record_id)

    @contextlib.contextmanager
    def write_transaction(self) -> Iterator[None]:
        """A transaction that takes the write lock at its start on SQLite.

        SQLite's default deferred transaction that reads and then writes fails at once
        (SQLITE_BUSY, no waiting) when another writer committed in between; taking the lock
        first, after waiting in the writers' queue, makes concurrent writers take turns instead.
        The writers of one process that come at once share one transaction and one commit
        (:mod:`affix.storage.group_commit`); the block returns once its writes are committed.
        Other databases lock rows as they go.
        """
        if isinstance(self.database, AffixSqliteDatabase):
            with self.database.group_commit.member():
                yield
            return
        with self.database.atomic():
            yield

    @contextlib.contextmanager
    def schema_change(self) -> Iterator[None]:
        """A transaction for a plugin's changes to tables of its own, which take turns with
        every other schema change.

        Every worker of every node asks the plugins for their container types as it starts, so
        a plugin creating its tables there runs as many times at once; PostgreSQL's ``CREATE
        TABLE IF NOT EXISTS`` is not safe against a concurrent one (the second fails on the
        catalogue's unique index, and with it the worker's start). So on PostgreSQL this holds
        the lock affix's migrations hold; on SQLite a write transaction is enough, as SQLite
        lets one writer at a time change the file. Opens a connection when none is open, and
        closes only that one.
        """
        opened = self.database.connect(reuse_if_open=True)
        try:
            with self.write_transaction():
                if dialect(self.database) == "postgresql":
                    take_postgres_schema_lock(self.database)
                yield
        finally:
            if opened:
                self.database.close()

    def user_of_key(self, key_hash: str) -> User | None:
        """The user holding the API key whose hash is ``key_hash``, with the key's ``key_id``,
        ``key_hash``, ``expires_at`` and ``last_used_at`` as attributes; None for no such key.
        Asked on every request: see :meth:`_statement`."""
        ApiKey = self.ApiKey
        sql, order = self._statement(
            "user_of_key", ["key hash"],
            lambda key: self.User.select(self.User, ApiKey.id.alias("key_id"), ApiKey.key_hash,
                                         ApiKey.expires_at, ApiKey.last_used_at)
            .join(ApiKey).where(ApiKey.key_hash == key))
        user = next(iter(self.User.raw(sql, *order(key_hash))), None)
        if user is not None:
            # a raw query converts only its own model's columns: SQLite gives these as text
            for field in (ApiKey.expires_at, ApiKey.last_used_at):
                setattr(user, field.name, field.python_value(getattr(user, field.name)))
        return user

    def record_key_use(self, key_id: int, now: datetime.datetime) -> None:
        with self.write_transaction():
            self.ApiKey.update(last_used_at=now).where(self.ApiKey.id == key_id).execute()

    def add_attachment(self, **values: Any) -> Attachment:
        """Insert an attachment row with ``values`` (every column but the id); the row, as
        ``Attachment.create`` would return it. Done on every upload, so the statement is
        written once per set of columns (as :meth:`_statement` does for queries) rather than
        built by peewee on every call."""
        fields = [self.Attachment._meta.fields[name] for name in sorted(values)]
        key = ("add_attachment", *(field.name for field in fields))
        sql = self._statements.get(key)
        if sql is None:
            param = self.database.param
            sql = (f"INSERT INTO {quote(self.Attachment._meta.table_name)} "
                   f"({', '.join(quote(field.column_name) for field in fields)}) "
                   f"VALUES ({', '.join(param for _ in fields)})")
            if self.database.returning_clause:
                sql += f" RETURNING {quote('id')}"
            self._statements[key] = sql
        cursor = self.database.execute_sql(
            sql, [field.db_value(values[field.name]) for field in fields])
        row_id = cursor.fetchone()[0] if self.database.returning_clause else cursor.lastrowid
        return self.Attachment(id=row_id, **values)

    def user_holds_any(self, user: User, permissions: Iterable[str],
                       project: Project | None = None) -> bool:
        """Whether a role of ``user`` holds one of ``permissions``: in ``project``, or in at
        least one project when none is named. Asked on every upload: see :meth:`_statement`."""
        permissions = sorted(permissions)
        markers = ["user", *(f"permission {number}" for number in range(len(permissions)))]
        if project is not None:
            markers.append("project")

        def build(user_id: object, *rest: object) -> peewee.Query:
            condition = (self.Membership.user == user_id) & (
                self.RolePermission.permission.in_(list(rest[:len(permissions)])))
            if project is not None:
                condition &= self.Membership.project == rest[-1]
            return (self.RolePermission.select(peewee.SQL("1")).join(self.Role)
                    .join(self.Membership).where(condition).limit(1))

        sql, order = self._statement(("user_holds_any", len(permissions), project is None),
                                     markers, build)
        values = [user.id, *permissions, *([] if project is None else [project.id])]
        return self.database.execute_sql(sql, order(*values)).fetchone() is not None

    def permissions_held(self, user: User, project_ids: Sequence[int]
                         ) -> dict[int, frozenset[str]]:
        """The permission names ``user``'s roles hold in each of ``project_ids``, by project id;
        a project where they hold none is left out. Asked on every request that shows what one
        may do: see :meth:`_statement` (one per number of projects, at most a page's)."""
        Membership, RolePermission = self.Membership, self.RolePermission
        markers = ["user", *(f"project {number}" for number in range(len(project_ids)))]
        sql, order = self._statement(
            ("permissions_held", len(project_ids)), markers,
            lambda user_id, *projects: (
                Membership.select(Membership.project, RolePermission.permission)
                .join(RolePermission, on=RolePermission.role == Membership.role)
                .where((Membership.user == user_id) & Membership.project.in_(list(projects)))))
        held: dict[int, set[str]] = {}
        for project_id, permission in self.database.execute_sql(
                sql, order(user.id, *project_ids)).fetchall():
            held.setdefault(project_id, set()).add(permission)
        return {project_id: frozenset(names) for project_id, names in held.items()}

    def _statement(self, name: object, markers: Sequence[str], build: Callable[..., peewee.Query]
                   ) -> tuple[str, Callable[..., list[object]]]:
        """(SQL, order) of the query ``build(*markers)`` makes, built once per catalogue.

        peewee builds a query's SQL anew on every call, and for the statements of every
        request that costs several times what the database spends running them. The SQL is
        built here once, with a marker in place of each value; ``order(*values)`` puts a call's
        values where the markers were."""
        statement = self._statements.get(name)
        if statement is None:
            markers = [f"\0{marker}" for marker in markers]
            sql, params = build(*markers).sql()
            # each parameter: the position of the value that goes there, or a constant of the
            # query's own (a LIMIT)
            slots = [(markers.index(param) if param in markers else None, param)
                     for param in params]

            def order(*values: object) -> list[object]:
                return [constant if position is None else values[position]
                        for position, constant in slots]
            statement = self._statements[name] = (sql, order)
        return statement


def quote(name: str) -> str:
    """An identifier quoted for SQL, as both databases quote them."""
    return '"' + name.replace('"', '""') + '"'


def utc_now() -> datetime.datetime:
    """The default clock: naive UTC, as every timestamp in the database is."""
    return datetime.datetime.now(datetime.timezone.utc).replace(tzinfo=None)
