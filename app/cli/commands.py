"""The ``affix`` command: run the server and manage users, keys, projects, roles, members.

Every command reads the same settings as the server (``AFFIX_*`` environment variables over
the config file ``affix.toml``) and fails with one line on stderr and a non-zero exit status
on bad input.
"""
import argparse
import datetime
import difflib
import functools
import importlib.metadata
import os
import re
import secrets
import sys
import urllib.parse

import peewee
from gunicorn.app.base import BaseApplication

from affix.app import connect_catalog, create_app, database_exists
from affix.app.cli.checks import CheckFailed, no_database, run_checks, unreachable
from affix.app.cli.listening import check_address_free
from affix.app.composition import compose
from affix.app.accounts.management import (
    AccountError, delete_user, find_project, find_user, keys_of, revoke_key, revoke_keys,
    set_locked,
)
from affix.app.accounts import listings
from affix.app.accounts.auth import issue_api_key
from affix.app.http.logs import AccessLogger, logging_config
from affix.app.metrics import mark_worker_dead, use_multiprocess_folder
from affix.storage.models import QUARANTINED
from affix.app.attachments.scanning import (
    DEFAULT_BATCH_SIZE, ScanReport, delete_quarantined, mark_for_rescan, quarantined, scan_waiting,
)
from affix.app.http.serving import HalWorker
from affix.app.config_file import CONFIG_VARIABLE
from affix.app.settings import SettingsError, load_settings, metrics_port, unknown_variables
from affix.app.sizes import parse_size
from affix.app.webhooks.stop_signals import StopSignals
from affix.app.client.uploads import (
    DEFAULT_CHUNK_SIZE, DEFAULT_PARALLEL, KEY_VARIABLE, MAX_PARALLEL, WAYS, upload_files,
)
from affix.app.webhooks.delivery import EVENTS, DeliveryPolicy, WebhookWorker
from affix.plugins.clamav import ScannerUnavailable
from affix.plugins.manager import PluginError, known_permissions
from affix.storage.cleanup import (
    remove_expired_direct_uploads, remove_expired_resumable_uploads, remove_unclaimed,
)
from affix.storage.blob_store import StorageError
from affix.storage.stores import create_store
from affix.storage.database import release_connections
from affix.storage.migrations import LATEST_VERSION, MigrationError, migrate
from affix.storage.orphans import find_orphans, remove_orphans
from affix.storage.models import utc_now

DEFAULT_HOST = "127.0.0.1"
DEFAULT_BIND = f"{DEFAULT_HOST}:8000"
# --bind: [HOST:]PORT, with an IPv6 host in brackets; an empty HOST is the default one
_BIND = re.compile(r"(?:(?P<host>\[[0-9a-fA-F:.]+\]|[^\s:\[\]/]*):)?(?P<port>[0-9]{1,5})")
# a count or an id: 18 digits fit every integer column
_WHOLE_NUMBER = re.compile(r"[0-9]{1,18}")
# the longest time a flag may name: a hundred years, well within what datetime counts
LONGEST_SECONDS = 100 * 365 * 24 * 3600
# a poll interval: up to a year, to the microsecond
_SECONDS = re.compile(r"[0-9]{1,8}(?:\.[0-9]{1,6})?")
# what a command does with the database: makes it where there is none (serve, migrate), needs
# it there, or never opens it
MAKES_DATABASE, NEEDS_DATABASE, NO_DATABASE = "makes", "needs", "none"
# a day: longer than any upload lasts, so a blob whose row is about to be written is never taken
DEFAULT_GC_MIN_AGE_MINUTES = 24 * 60


class CommandError(Exception):
    """Bad input to a command; its message is the one line the user sees."""


class SetupError(Exception):
    """The settings point at something affix cannot use (no database, no bucket): like a bad
    setting, exit status 2, and nothing made."""


class AffixServer(BaseApplication):
    """gunicorn with gthread workers: a sync worker would be killed by its timeout in the middle
    of a slow upload. The app is created in each worker, after the fork."""

    def __init__(self, settings, options, metrics_folder=None):
        self.settings = settings
        self.options = options
        self.metrics_folder = metrics_folder
        super().__init__()

    def load_config(self):
        for name, value in self.options.items():
            self.cfg.set(name, value)

    def load(self):
        return create_app(self.settings, metrics_folder=self.metrics_folder)


def ensure_admin(catalog, out, bind):
    """On the first start with an empty database: an admin user, whose key is printed once."""
    with catalog.database.connection_context(), catalog.write_transaction():
        if catalog.User.select().exists():
            return
        admin = catalog.User.create(login="admin", name="Admin", admin=True)
        key = issue_api_key(catalog, admin, utc_now())
    if bind.startswith("unix:"):
        server = f"--unix-socket {bind.removeprefix('unix:')} http://localhost"
    else:
        server = "http://" + (
            bind if not bind.startswith("0.0.0.0:") else "127.0.0.1:" + bind.split(":", 1)[1])
    print(
        "affix: created the admin user 'admin'. Its API key is shown only this once:\n"
        f"  {key}\n"
        "Upload a file with it:\n"
        f"  curl -u apikey:{key} -F 'metadata={{\"fileName\":\"cat.png\"}};type=application/json'"
        f" -F 'file=@cat.png' {server}/api/v3/attachments",
        file=out, flush=True,
    )


def sweep_staging(services, cutoff=None) -> int:
    """Sweep the blob store's staging (``cutoff``: see its ``sweep_staging``), keeping the
    multipart uploads of the resumable uploads still going on, by any node: a node that
    starts, or ``affix gc``, must never cut another node's upload short."""
    in_use = services.resumable_uploads.multipart_ids_in_use(utc_now())
    return services.blob_store.sweep_staging(cutoff, keep=frozenset(in_use))


def cmd_serve(args, services, out, environ, server=AffixServer):
    """``server``: gunicorn's, or what stands in for it."""
    settings = services.settings
    # first: the checks below make the database and write to the store
    for bind in (args.bind, settings.metrics_bind):
        if bind:
            check_address_free(bind)
    # before the admin's key is printed and the workers fork: a broken plugin stops the start
    # here, with one message, rather than in every worker; a store that cannot be used (a
    # bucket that does not exist) would fail the first upload, after the key scrolled by
    run_checks(services, environ, out, sys.stderr, serving=True)
    options = {
        "bind": [args.bind],
        "workers": args.workers,
        "threads": args.threads,
        # gthread, whose own error answers are HAL like affix's
        "worker_class": HalWorker,
        # gunicorn's runtime-control socket is one fixed path per user: two servers on one
        # machine would fight over it, and affix needs none of what it offers
        "control_socket_disable": True,
        "logger_class": AccessLogger,
        "logconfig_dict": logging_config(settings.log_format, settings.access_log),
    }
    metrics_folder = None
    if settings.metrics_bind:
        if args.bind.rpartition(":")[2] == str(metrics_port(settings.metrics_bind)):
            raise CommandError(f"AFFIX_METRICS_BIND ({settings.metrics_bind}) needs a port of "
                               f"its own, not the one of --bind {args.bind}")
        metrics_folder = settings.data_dir / "metrics"
        use_multiprocess_folder(metrics_folder)
        options["bind"].append(settings.metrics_bind)
        options["child_exit"] = lambda arbiter, worker: mark_worker_dead(metrics_folder,
                                                                         worker.pid)
    # made before the key is printed: it refuses an address it could not listen on
    serving = server(settings, options, metrics_folder)
    catalog = services.catalog
    ensure_admin(catalog, out, args.bind)
    with catalog.database.connection_context():
        swept = sweep_staging(services)
    if swept:
        print(f"affix: removed {swept} partial upload{'' if swept == 1 else 's'} left in staging "
              "by an earlier stop", file=out, flush=True)
    for lowered in settings.lowered_limits():
        print(f"affix: {lowered}", file=out, flush=True)
    # the workers fork from this process: none may inherit its database connection or lock file
    release_connections(catalog.database)
    serving.run()


def cmd_check(args, services, out, environ):
    run_checks(services, environ, out, sys.stderr)


def cmd_user_add(args, services, out):
    catalog = services.catalog
    with catalog.database.connection_context():
        try:
            user = catalog.User.create(
                login=args.login, name=args.name or args.login, admin=args.admin
            )
        except peewee.IntegrityError:
            raise CommandError(f"a user with the login {args.login!r} already exists") from None
    print(f"created user {user.login!r} (id {user.id})", file=out)


def cmd_user_lock(args, services, out):
    catalog = services.catalog
    with catalog.database.connection_context():
        set_locked(catalog, args.login, True)
    print(f"locked user {args.login!r}: every API key of theirs is refused until affix user "
          f"unlock {args.login}", file=out)


def cmd_user_unlock(args, services, out):
    catalog = services.catalog
    with catalog.database.connection_context():
        set_locked(catalog, args.login, False)
    print(f"unlocked user {args.login!r}", file=out)


def cmd_user_delete(args, services, out):
    catalog = services.catalog
    with catalog.database.connection_context():
        user, keys, attachments, work_packages, deleted_user = delete_user(catalog, args.login)
    print(f"deleted user {user.login!r} (id {user.id}) and its {_plural(keys, 'API key')}; its "
          f"{_plural(attachments, 'attachment')} and {_plural(work_packages, 'work package')} "
          f"now show the author {deleted_user.name!r} (id {deleted_user.id})", file=out)


def cmd_user_list(args, services, out):
    catalog = services.catalog
    with catalog.database.connection_context():
        found = listings.users(catalog)
    for user in found:
        marks = [mark for mark, holds in (("admin", user.admin), ("locked", user.locked))
                 if holds]
        print(f"{user.id}\t{user.login}\t{user.name}\t{', '.join(marks) or '-'}", file=out)
    print(_plural(len(found), "user"), file=out)


def cmd_apikey_create(args, services, out):
    catalog = services.catalog
    now = utc_now()
    expires_at = None if args.expires is None else now + datetime.timedelta(days=args.expires)
    with catalog.database.connection_context():
        key = issue_api_key(catalog, find_user(catalog, args.login), now, expires_at)
    # alone on stdout, so that scripts can capture it
    print(key, file=out)


def _timestamp(moment):
    return moment.isoformat(timespec="seconds") + "Z"


def cmd_apikey_list(args, services, out):
    """One line a key, never its secret (affix keeps only its hash)."""
    catalog = services.catalog
    with catalog.database.connection_context():
        keys = keys_of(catalog, find_user(catalog, args.login))
    now = utc_now()
    for key in keys:
        last_use = "never" if key.last_used_at is None else _timestamp(key.last_used_at)
        if key.expires_at is None:
            expiry = "expires never"
        else:
            expiry = (f"{'expired' if key.expires_at <= now else 'expires'} "
                      f"{_timestamp(key.expires_at)}")
        print(f"{key.id}\tcreated {_timestamp(key.created_at)}\tlast used {last_use}\t{expiry}",
              file=out)
    print(f"{_plural(len(keys), 'API key')} of {args.login!r}", file=out)


def cmd_apikey_revoke(args, services, out):
    if (args.id is None) == (args.all is None):
        raise CommandError("name the id of the key to revoke, or --all USER")
    catalog = services.catalog
    with catalog.database.connection_context():
        if args.id is not None:
            login = revoke_key(catalog, args.id)
            print(f"revoked API key {args.id} of {login!r}", file=out)
        else:
            revoked = revoke_keys(catalog, args.all)
            print(f"revoked {_plural(revoked, 'API key')} of {args.all!r}", file=out)


def cmd_project_add(args, services, out):
    if args.identifier.isdigit():
        # /api/v3/projects/42 names the project with the id 42: this one could not be reached
        raise CommandError(f"a project identifier cannot be all digits: {args.identifier!r}")
    catalog = services.catalog
    with catalog.database.connection_context():
        try:
            project = catalog.Project.create(
                identifier=args.identifier, name=args.name or args.identifier
            )
        except peewee.IntegrityError:
            raise CommandError(f"a project {args.identifier!r} already exists") from None
    print(f"created project {project.identifier!r} (id {project.id})", file=out)


def cmd_project_list(args, services, out):
    catalog = services.catalog
    with catalog.database.connection_context():
        found = listings.projects(catalog)
    for project in found:
        print(f"{project.id}\t{project.identifier}\t{project.name}", file=out)
    print(_plural(len(found), "project"), file=out)


def cmd_role_add(args, services, out):
    catalog = services.catalog
    # before a connection is opened: making the container types ends the ones plugins used
    known = known_permissions(services.plugin_manager, services.container_types)
    for name in args.permissions:
        if name not in known:
            close = difflib.get_close_matches(name, known, n=3, cutoff=0.6)
            hint = (f"did you mean {', '.join(close)}?" if close
                    else f"known permissions: {', '.join(sorted(known))}")
            raise CommandError(f"unknown permission {name!r}; {hint}")
    with catalog.database.connection_context(), catalog.write_transaction():
        try:
            role = catalog.Role.create(name=args.name)
        except peewee.IntegrityError:
            raise CommandError(f"a role {args.name!r} already exists") from None
        for permission in dict.fromkeys(args.permissions):
            catalog.RolePermission.create(role=role, permission=permission)
    print(f"created role {role.name!r} with {', '.join(dict.fromkeys(args.permissions))}",
          file=out)


def cmd_role_list(args, services, out):
    catalog = services.catalog
    with catalog.database.connection_context():
        found = listings.roles(catalog)
    for role, permissions in found:
        print(f"{role.id}\t{role.name}\t{', '.join(permissions) or '-'}", file=out)
    print(_plural(len(found), "role"), file=out)


def cmd_member_add(args, services, out):
    catalog = services.catalog
    with catalog.database.connection_context(), catalog.write_transaction():
        user = find_user(catalog, args.login)
        project = find_project(catalog, args.project)
        role = catalog.Role.get_or_none(catalog.Role.name == args.role)
        if role is None:
            raise CommandError(f"no role {args.role!r}")
        try:
            catalog.Membership.create(user=user, project=project, role=role)
        except peewee.IntegrityError:
            raise CommandError(
                f"{args.login!r} already has the role {args.role!r} in {args.project!r}"
            ) from None
    print(f"{args.login!r} is now {args.role!r} in {args.project!r}", file=out)


def cmd_storage_init(args, services, out):
    """Make the bucket or the folder the settings store blobs in: once per installation, before
    the first start (which refuses a bucket that is not there)."""
    settings = services.settings
    try:
        place, made = create_store(settings.storage_url, settings.s3)
    except StorageError as error:
        raise CommandError(str(error)) from None
    print(f"created {place}" if made else f"{place} exists already: nothing to do", file=out)


def cmd_member_list(args, services, out):
    catalog = services.catalog
    with catalog.database.connection_context():
        found = listings.members(catalog, args.project)
    for user, roles in found:
        print(f"{user.id}\t{user.login}\t{', '.join(roles)}", file=out)
    print(f"{_plural(len(found), 'member')} of {args.project!r}", file=out)


def cmd_member_remove(args, services, out):
    catalog = services.catalog
    with catalog.database.connection_context():
        taken = listings.remove_member(catalog, args.project, args.login)
    print(f"removed {args.login!r} from {args.project!r} (roles: {', '.join(taken)})", file=out)


# the kinds of work-package attributes the CLI manages: command, model, its flag and what the
# flag says
ATTRIBUTE_COMMANDS = {
    "type": ("Type", "is_milestone", "milestone"),
    "status": ("Status", "is_closed", "closed"),
    "priority": ("Priority", "is_active", "inactive"),
}


def cmd_attribute_add(args, services, out):
    """``affix type|status|priority add NAME [--default] [--milestone|--closed|--inactive]``:
    the new one comes last; ``--default`` makes it the one new work packages get, in place of
    the default there was."""
    model_name, flag, flag_word = ATTRIBUTE_COMMANDS[args.command]
    catalog = services.catalog
    model = getattr(catalog, model_name)
    values = {flag: getattr(args, flag_word)}
    if flag == "is_active":
        values[flag] = not values[flag]
    if model_name == "Type":
        values["created_at"] = values["updated_at"] = utc_now()
    with catalog.database.connection_context(), catalog.write_transaction():
        if args.default:
            model.update(is_default=False).where(model.is_default == True).execute()  # noqa: E712
        last = model.select(peewee.fn.MAX(model.position)).scalar() or 0
        try:
            record = model.create(name=args.name, position=last + 1, is_default=args.default,
                                  **values)
        except peewee.IntegrityError:
            raise CommandError(f"a {args.command} {args.name!r} already exists") from None
    print(f"created {args.command} {record.name!r} (id {record.id})", file=out)


def cmd_attribute_list(args, services, out):
    model_name, flag, flag_word = ATTRIBUTE_COMMANDS[args.command]
    catalog = services.catalog
    model = getattr(catalog, model_name)
    with catalog.database.connection_context():
        for record in model.select().order_by(model.position, model.id):
            marks = ["default"] if record.is_default else []
            if getattr(record, flag) != (flag == "is_active"):
                marks.append(flag_word)
            print(f"{record.id} {record.name}" + (f" ({', '.join(marks)})" if marks else ""),
                  file=out)


def cmd_cleanup(args, services, out):
    settings, catalog, blob_store = services.settings, services.catalog, services.blob_store
    grace_period = datetime.timedelta(minutes=settings.grace_period_minutes)
    staging = services.staging
    now = utc_now()
    with catalog.database.connection_context():
        # quarantined attachments wait for an admin (affix quarantine)
        removed = remove_unclaimed(catalog, blob_store, now - grace_period,
                                   kept_statuses=(QUARANTINED,))
        if staging is not None:
            expired = remove_expired_direct_uploads(
                catalog, services.resumable_uploads, staging,
                now - datetime.timedelta(seconds=settings.direct_upload_expiry))
        resumable = remove_expired_resumable_uploads(
            services.resumable_uploads, services.partials, blob_store, now)
    print(f"removed {removed} unclaimed attachment{'' if removed == 1 else 's'} older than "
          f"{settings.grace_period_minutes} minutes", file=out)
    if staging is not None:
        print(f"removed {expired} direct upload{'' if expired == 1 else 's'} never completed, "
              f"prepared more than {settings.direct_upload_expiry} seconds ago", file=out)
    print(f"removed {_plural(resumable, 'resumable upload')} left unfinished past "
          f"Upload-Expires", file=out)


def cmd_gc(args, services, out):
    catalog = services.catalog
    cutoff = utc_now() - datetime.timedelta(minutes=args.min_age)
    collect = find_orphans if args.dry_run else remove_orphans
    with catalog.database.connection_context():
        orphans = collect(catalog, services.blob_store, cutoff)
    verb = "would remove" if args.dry_run else "removed"
    for key in orphans:
        print(f"{verb} {key}", file=out)
    print(f"{verb} {len(orphans)} blob{'' if len(orphans) == 1 else 's'} without an attachment, "
          f"older than {args.min_age} minutes", file=out)
    # what uploads cut short left in staging, by a crash or by a disk that filled up
    if args.dry_run:
        swept = 0
    else:
        with catalog.database.connection_context():
            swept = sweep_staging(services, cutoff)
    if swept:
        print(f"removed {swept} partial upload{'' if swept == 1 else 's'} left in staging, "
              f"older than {args.min_age} minutes", file=out)


def _plural(count, noun):
    return f"{count} {noun}{'' if count == 1 else 's'}"


def cmd_scan(args, services, out):
    if not services.settings.scan.enabled:
        raise CommandError("virus scanning is off: set AFFIX_SCAN_MODE (stream or after) and "
                           "AFFIX_CLAMD")
    catalog = services.catalog
    report = ScanReport()
    with catalog.database.connection_context():
        if args.rescan:
            marked = mark_for_rescan(catalog)
            print(f"marked {_plural(marked, 'scanned attachment')} for rescan", file=out)
        try:
            # the plugins hear of what the scan changed, and the webhooks' outbox gets its
            # events, as when the service changes attachments
            scan_waiting(catalog, services.blob_store, services.scanner, services.events,
                         services.webhooks, args.batch_size, report)
        except ScannerUnavailable as error:
            raise CommandError(
                f"{error}; stopped after {report.scanned} clean and {report.quarantined} "
                "quarantined: run affix scan again to go on") from None
    print(f"scanned {_plural(report.scanned + report.quarantined, 'attachment')}: "
          f"{report.scanned} clean, {report.quarantined} quarantined", file=out)
    if report.refused:
        ids = ", ".join(str(attachment_id) for attachment_id, _ in report.refused)
        raise CommandError(f"{_plural(len(report.refused), 'attachment')} could not be scanned "
                           f"and keep waiting ({ids}): {report.refused[-1][1]}")


def cmd_quarantine_list(args, services, out):
    catalog = services.catalog
    with catalog.database.connection_context():
        records = quarantined(catalog)
    for record in records:
        container = (f"{record.container_type} {record.container_id}"
                     if record.container_type else "-")
        print(f"{record.id}\t{record.file_name}\t{record.file_size}\t{record.author.login}\t"
              f"{record.created_at.isoformat()}Z\t{container}\t{record.scan_finding}", file=out)
    print(f"{_plural(len(records), 'quarantined attachment')}", file=out)


def cmd_quarantine_delete(args, services, out):
    if args.all == bool(args.ids):
        raise CommandError("name the ids of the attachments to delete, or --all")
    catalog = services.catalog
    with catalog.database.connection_context():
        records = quarantined(catalog, None if args.all else args.ids)
        missing = sorted(set(args.ids) - {record.id for record in records})
        if missing:
            raise CommandError("no quarantined attachment with the id "
                               + ", ".join(str(each) for each in missing))
        deleted = [record for record in records
                   if delete_quarantined(catalog, services.blob_store, services.events,
                                         services.webhooks, record)]
    for record in deleted:
        print(f"deleted attachment {record.id} ({record.file_name})", file=out)
    print(f"deleted {_plural(len(deleted), 'quarantined attachment')}", file=out)


def cmd_migrate(args, services, out):
    # the schema as it is, not brought up to date first: the migrations applied are the answer
    applied = migrate(connect_catalog(services.settings).database)
    for migration in applied:
        print(f"applied migration {migration.version}: {migration.description}", file=out)
    print(f"the database schema is {'now' if applied else 'already'} at version {LATEST_VERSION}",
          file=out)


def _webhook_url(url):
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise CommandError(f"a webhook URL is http://host/... or https://host/..., not {url!r}")
    return url


def cmd_webhooks_add(args, services, out):
    url = _webhook_url(args.url)
    events = list(dict.fromkeys(args.events or EVENTS))
    unknown = [event for event in events if event not in EVENTS]
    if unknown:
        raise CommandError(f"unknown event {unknown[0]!r}; known events: {', '.join(EVENTS)}")
    if args.secret is not None and not 16 <= len(args.secret) <= 255:
        raise CommandError("a webhook secret has 16 to 255 characters")
    secret = secrets.token_hex(32) if args.secret is None else args.secret
    catalog = services.catalog
    with catalog.database.connection_context():
        subscription = services.outbox.subscribe(url, secret, events, utc_now())
    print(f"created webhook {subscription.id} to {url} for {', '.join(events)}", file=out)
    if args.secret is None:
        print(f"its secret, shown only this once:\n  {secret}", file=out)


def cmd_webhooks_list(args, services, out):
    catalog = services.catalog
    with catalog.database.connection_context():
        subscriptions = services.outbox.subscriptions()
    for subscription in subscriptions:
        line = (f"{subscription.id} {subscription.url} {', '.join(subscription.events.split())}: "
                f"{subscription.waiting} waiting")
        if subscription.last_error:
            line += f", last error: {subscription.last_error}"
        print(line, file=out)


def cmd_webhooks_remove(args, services, out):
    catalog = services.catalog
    with catalog.database.connection_context():
        waiting = services.outbox.unsubscribe(args.id)
    if waiting is None:
        raise CommandError(f"no webhook {args.id}")
    print(f"removed webhook {args.id} and its {waiting} undelivered "
          f"event{'' if waiting == 1 else 's'}", file=out)


def cmd_webhooks_run(args, services, out):
    policy = DeliveryPolicy(
        max_backoff=datetime.timedelta(seconds=args.max_backoff),
        keep_delivered=datetime.timedelta(hours=args.keep_delivered))
    # systemd's stop (SIGTERM) and Ctrl-C end the loop after the delivery under way; blocked
    # from here on, before the catalogue (a migration) or anything else may start a thread
    stopping = StopSignals()
    worker = WebhookWorker(services.catalog, policy)
    print("affix: delivering webhooks", file=out, flush=True)
    worker.run(stopping, args.poll_interval)


def cmd_plugins(args, services, out):
    for name, distribution, version, hooks in services.plugin_manager.listing():
        print(f"{name} ({distribution} {version}): {', '.join(hooks) or 'no hooks'}", file=out)


def _size_argument(text):
    """``SIZE`` of an option, written as every size is (:mod:`affix.app.sizes`)."""
    try:
        size = parse_size(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None
    if size == 0:
        raise argparse.ArgumentTypeError(f"must be greater than 0, not {text!r}")
    return size


def _whole_number(text, least=0):
    """A count, an age, an id of a flag or an argument: what a database stores as an integer
    (int() alone would take " 3", "1_000", digits of other scripts, and numbers past any
    column's range)."""
    if _WHOLE_NUMBER.fullmatch(text) is None:
        digits = " of at most 18 digits" if text.isascii() and text.isdigit() else ""
        raise argparse.ArgumentTypeError(
            f"must be a whole number{digits} of {least} or more, not {text!r}")
    if int(text) < least:
        raise argparse.ArgumentTypeError(f"must be a whole number of {least} or more, "
                                         f"not {text!r}")
    return int(text)


def _at_least_one(text):
    return _whole_number(text, 1)


def _time_in(unit, seconds_each, least=1):
    """The ``type=`` of a flag that names a time in ``unit``s: a whole number from ``least``
    up to a hundred years (more would overflow datetime: a traceback, not a refusal)."""
    most = LONGEST_SECONDS // seconds_each

    def time_in_unit(text):
        number = _whole_number(text, least)
        if number > most:
            raise argparse.ArgumentTypeError(
                f"must be at most {most} {unit} (a hundred years), not {text!r}")
        return number
    return time_in_unit


def _seconds(text):
    """A time in seconds greater than 0: 2, 0.05."""
    if _SECONDS.fullmatch(text) is None or float(text) == 0:
        raise argparse.ArgumentTypeError(
            f"must be a number of seconds greater than 0 (2, 0.5), not {text!r}")
    return float(text)


def _bind_address(text):
    """gunicorn's address of ``--bind``: HOST:PORT, [IPv6]:PORT, PORT or :PORT (on the
    default host), unix:PATH. gunicorn itself would take a bare port for a host on its own
    default port."""
    if text.startswith("unix:") and len(text) > len("unix:"):
        return text
    match = _BIND.fullmatch(text.strip())
    # port 0: one the system picks
    if match is None or int(match["port"]) > 65535:
        raise argparse.ArgumentTypeError(
            f"not an address: {text!r}; write HOST:PORT, [IPv6]:PORT, PORT (on {DEFAULT_HOST}) "
            "or unix:PATH")
    return f"{match['host'] or DEFAULT_HOST}:{match['port']}"


class OneLineParser(argparse.ArgumentParser):
    """argparse's errors in one line, without the usage before them (``--help`` shows it)."""

    def error(self, message):
        if message.startswith("unrecognized arguments: ") and any(
                word == "--config" or word.startswith("--config=") for word in message.split()):
            # the guide's cron line, typed the way most commands take their options
            message += "; --config goes before the command: affix --config PATH COMMAND ..."
        self.exit(2, f"{self.prog}: error: {message}\n")


def _parallel_argument(text):
    """Parts in flight: a whole number from 1 to MAX_PARALLEL."""
    count = _whole_number(text, 1)
    if count > MAX_PARALLEL:
        raise argparse.ArgumentTypeError(f"must be at most {MAX_PARALLEL}, not {text!r}")
    return count


def add_way_arguments(upload):
    """``affix upload``'s choice of way and parts in flight."""
    upload.add_argument(
        "--way", choices=WAYS, default="auto",
        help="how the files go up: auto (default) takes the fastest the server offers, "
             "direct-parts (parts straight to the bucket, several at once), direct (one form "
             "to the bucket), tus (resumable, through the server), multipart (one request)")
    upload.add_argument(
        "--parallel", type=_parallel_argument, default=DEFAULT_PARALLEL, metavar="N",
        help="parts of one file in flight at once: parts straight to the bucket, or tus "
             "partial uploads the server joins (concatenation, files of at least 8M a part); "
             "1 sends one at a time (default %(default)s)")


def cmd_upload(args, environ, out):
    """A client command: it reads no server settings, and answers its own exit status."""
    return upload_files(args.files, args.url, work_package=args.work_package,
                        description=args.description, as_json=args.json, again=args.again,
                        chunk_size=args.chunk_size, way=args.way, parallel=args.parallel,
                        environ=environ, out=out, err=sys.stderr)


def installed_version():
    """The version of the affix distribution installed; a clone run without installing it
    has none."""
    try:
        return importlib.metadata.version("affix")
    except importlib.metadata.PackageNotFoundError:
        return "(not installed: pip install . in affix's folder)"


def build_parser():
    parser = OneLineParser(prog="affix", description=__doc__.splitlines()[0])
    parser.add_argument(
        "--config", metavar="PATH",
        help=f"the settings file (default: ${CONFIG_VARIABLE}, else the first of ./affix.toml, "
             "$XDG_CONFIG_HOME/affix/affix.toml, /etc/affix/affix.toml); AFFIX_* variables "
             "win over its keys")
    parser.add_argument("--version", action="version", version=f"affix {installed_version()}")
    # each command that makes the database, or never opens it, says so
    parser.set_defaults(database=NEEDS_DATABASE)
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    serve = commands.add_parser("serve", help="run the server under gunicorn")
    serve.add_argument("--bind", type=_bind_address, default=DEFAULT_BIND,
                       help=f"HOST:PORT, [IPv6]:PORT, PORT (on {DEFAULT_HOST}) or unix:PATH "
                            "(default %(default)s)")
    serve.add_argument("--workers", type=_at_least_one, default=2, help="processes (default 2)")
    serve.add_argument("--threads", type=_at_least_one, default=8,
                       help="threads per process (default 8)")
    serve.set_defaults(handler=cmd_serve, database=MAKES_DATABASE)

    check = commands.add_parser(
        "check", help="check the settings and what they point at (plugins, database, store, "
                      "clamd, webhook receivers), one line each; makes no database")
    # it looks for the database itself, as one of its checks
    check.set_defaults(handler=cmd_check, database=NO_DATABASE)

    user = commands.add_parser("user", help="manage users").add_subparsers(
        dest="action", required=True, metavar="ACTION")
    user_add = user.add_parser("add", help="create a user")
    user_add.add_argument("login", help="the name the user is known by")
    user_add.add_argument("--name", help="display name (default: the login)")
    user_add.add_argument("--admin", action="store_true", help="make the user an admin")
    user_add.set_defaults(handler=cmd_user_add)
    user.add_parser("list", help="every user, tab-separated: id, login, name, admin/locked"
                    ).set_defaults(handler=cmd_user_list)
    for action, handler, what in (
            ("lock", cmd_user_lock, "refuse every API key of a user, at once, on every node"),
            ("unlock", cmd_user_unlock, "accept a locked user's keys again"),
            ("delete", cmd_user_delete, "delete a user and their keys; their attachments and "
                                        "work packages stay, by 'Deleted user'")):
        user_action = user.add_parser(action, help=what)
        user_action.add_argument("login", help="the user's login")
        user_action.set_defaults(handler=handler)

    apikey = commands.add_parser("apikey", help="manage API keys").add_subparsers(
        dest="action", required=True, metavar="ACTION")
    apikey_create = apikey.add_parser("create", help="create a key and print it once")
    apikey_create.add_argument("login", help="the user the key authenticates")
    apikey_create.add_argument("--expires", type=_time_in("days", 24 * 3600), metavar="DAYS",
                               help="refuse the key from this many days on (default: never)")
    apikey_create.set_defaults(handler=cmd_apikey_create)
    apikey_list = apikey.add_parser(
        "list", help="a user's keys: id, creation, last use, expiry (never the key)")
    apikey_list.add_argument("login", help="the user's login")
    apikey_list.set_defaults(handler=cmd_apikey_list)
    apikey_revoke = apikey.add_parser(
        "revoke", help="delete a key (or every key of a user), refused at once on every node")
    apikey_revoke.add_argument("id", nargs="?", type=_at_least_one, metavar="KEY_ID",
                               help="the key's id, as apikey list shows it")
    apikey_revoke.add_argument("--all", metavar="USER", help="every key of this user")
    apikey_revoke.set_defaults(handler=cmd_apikey_revoke)

    project = commands.add_parser("project", help="manage projects").add_subparsers(
        dest="action", required=True, metavar="ACTION")
    project_add = project.add_parser("add", help="create a project")
    project_add.add_argument("identifier", help="the project's identifier, as in its URLs")
    project_add.add_argument("--name", help="display name (default: the identifier)")
    project_add.set_defaults(handler=cmd_project_add)
    project.add_parser("list", help="every project, tab-separated: id, identifier, name"
                       ).set_defaults(handler=cmd_project_list)

    role = commands.add_parser("role", help="manage roles").add_subparsers(
        dest="action", required=True, metavar="ACTION")
    role_add = role.add_parser("add", help="create a role holding permissions")
    role_add.add_argument("name", help="the role's name")
    role_add.add_argument("permissions", nargs="+", metavar="PERMISSION",
                          help="a permission the role holds (affix's or a plugin's)")
    role_add.set_defaults(handler=cmd_role_add)
    role.add_parser("list", help="every role, tab-separated: id, name, permissions"
                    ).set_defaults(handler=cmd_role_list)

    member = commands.add_parser("member", help="manage memberships").add_subparsers(
        dest="action", required=True, metavar="ACTION")
    member_add = member.add_parser("add", help="give a user a role in a project")
    member_add.add_argument("login", help="the user's login")
    member_add.add_argument("project", help="the project's identifier")
    member_add.add_argument("role", help="the role's name")
    member_add.set_defaults(handler=cmd_member_add)
    member_list = member.add_parser(
        "list", help="the members of a project, tab-separated: user id, login, roles")
    member_list.add_argument("project", help="the project's identifier")
    member_list.set_defaults(handler=cmd_member_list)
    # in add's order, which a user who just added a member has in their fingers
    member_remove = member.add_parser("remove", help="take every role of a user in a project")
    member_remove.add_argument("login", help="the user's login")
    member_remove.add_argument("project", help="the project's identifier")
    member_remove.set_defaults(handler=cmd_member_remove)

    for command, (_, _, flag_word) in ATTRIBUTE_COMMANDS.items():
        plural = "priorities" if command == "priority" else (
            "statuses" if command == "status" else "types")
        actions = commands.add_parser(
            command, help=f"manage the {plural} of work packages").add_subparsers(
            dest="action", required=True, metavar="ACTION")
        add = actions.add_parser("add", help=f"create a {command}, shown last")
        add.add_argument("name", help=f"the {command}'s name")
        add.add_argument("--default", action="store_true",
                         help="what new work packages get, instead of the current default")
        add.add_argument(f"--{flag_word}", action="store_true", help=f"a {flag_word} {command}")
        add.set_defaults(handler=cmd_attribute_add)
        listing = actions.add_parser("list", help=f"the {plural}, in order")
        listing.set_defaults(handler=cmd_attribute_list)

    cleanup = commands.add_parser(
        "cleanup", help="delete uploads still unclaimed after AFFIX_GRACE_PERIOD minutes, "
                        "direct uploads not completed after AFFIX_DIRECT_UPLOAD_EXPIRY seconds, "
                        "and resumable uploads past their Upload-Expires")
    cleanup.set_defaults(handler=cmd_cleanup)

    gc = commands.add_parser(
        "gc", help="delete stored blobs that no attachment references (left by a crash)")
    gc.add_argument(
        "--min-age", type=_time_in("minutes", 60, least=0), default=DEFAULT_GC_MIN_AGE_MINUTES,
        metavar="MINUTES",
        help="only blobs older than this, which must exceed the longest upload "
             "(default %(default)s)")
    gc.add_argument("--dry-run", action="store_true", help="list them, delete nothing")
    gc.set_defaults(handler=cmd_gc)

    scan = commands.add_parser(
        "scan", help="scan the attachments waiting for a virus scan (AFFIX_SCAN_MODE=after, "
                     "or kept unscanned)")
    scan.add_argument("--rescan", action="store_true",
                      help="first mark every scanned attachment for rescan (new signatures)")
    scan.add_argument("--batch-size", type=_at_least_one, default=DEFAULT_BATCH_SIZE,
                      metavar="ROWS",
                      help="rows read at a time (default %(default)s)")
    scan.set_defaults(handler=cmd_scan)

    quarantine = commands.add_parser(
        "quarantine", help="list or delete the attachments a virus scan found malware in"
    ).add_subparsers(dest="action", required=True, metavar="ACTION")
    quarantine.add_parser("list", help="list them, tab-separated").set_defaults(
        handler=cmd_quarantine_list)
    quarantine_delete = quarantine.add_parser("delete", help="delete them, rows and bytes")
    quarantine_delete.add_argument("ids", nargs="*", type=_at_least_one, metavar="ID",
                                   help="a quarantined attachment's id")
    quarantine_delete.add_argument("--all", action="store_true", help="every one of them")
    quarantine_delete.set_defaults(handler=cmd_quarantine_delete)

    migrate_command = commands.add_parser(
        "migrate", help="bring the database's schema up to date (every start does it too)")
    migrate_command.set_defaults(handler=cmd_migrate, database=MAKES_DATABASE)

    webhooks = commands.add_parser("webhooks", help="manage and deliver webhooks").add_subparsers(
        dest="action", required=True, metavar="ACTION")
    webhooks_add = webhooks.add_parser(
        "add", help="subscribe a URL to events; prints its signing secret once")
    webhooks_add.add_argument("url", help="where the events are POSTed")
    webhooks_add.add_argument(
        "--event", dest="events", action="append", metavar="EVENT",
        help=f"an event to deliver, repeatable (default: all of {', '.join(EVENTS)})")
    webhooks_add.add_argument("--secret", help="the signing secret (default: a new random one)")
    webhooks_add.set_defaults(handler=cmd_webhooks_add)
    webhooks_list = webhooks.add_parser(
        "list", help="the subscriptions, with their undelivered events")
    webhooks_list.set_defaults(handler=cmd_webhooks_list)
    webhooks_remove = webhooks.add_parser(
        "remove", help="delete a subscription and its undelivered events")
    webhooks_remove.add_argument("id", type=_at_least_one,
                                 help="the subscription's id, as list shows it")
    webhooks_remove.set_defaults(handler=cmd_webhooks_remove)
    webhooks_run = webhooks.add_parser("run", help="deliver the events, until stopped")
    webhooks_run.add_argument(
        "--poll-interval", type=_seconds, default=1.0, metavar="SECONDS",
        help="how often to look for new events when idle (default %(default)s)")
    webhooks_run.add_argument(
        "--max-backoff", type=_time_in("seconds", 1), default=3600, metavar="SECONDS",
        help="the longest wait between two attempts of one delivery (default %(default)s)")
    webhooks_run.add_argument(
        "--keep-delivered", type=_time_in("hours", 3600), default=7 * 24, metavar="HOURS",
        help="how long delivered events are kept before they are pruned (default %(default)s)")
    webhooks_run.set_defaults(handler=cmd_webhooks_run)

    upload = commands.add_parser(
        "upload", help="upload files to an affix or OpenProject server, resumably where it "
                       f"can; the API key is read from {KEY_VARIABLE} or the config file")
    upload.add_argument("files", nargs="+", metavar="FILE", help="a file to upload")
    upload.add_argument("--url", required=True,
                        help="the server, e.g. https://openproject.example.com")
    upload.add_argument("--work-package", type=_at_least_one, metavar="ID",
                        help="attach to this work package (default: upload without a "
                             "container, to claim later)")
    upload.add_argument("--description", metavar="TEXT", help="each file's description")
    upload.add_argument("--json", action="store_true",
                        help="print one JSON array of the files' attachments and errors")
    upload.add_argument(
        "--chunk-size", type=_size_argument, default=DEFAULT_CHUNK_SIZE, metavar="SIZE",
        help="bytes per request of a resumable upload, e.g. 512K or 4M: at most this much is "
             "sent again after an interruption; halved while a proxy refuses it as too large "
             "(default 4M)")
    add_way_arguments(upload)
    upload.add_argument(
        "--again", action="store_true",
        help="upload the files anew even if the same command uploaded them before (without "
             "it, their attachments are reported)")
    upload.set_defaults(handler=cmd_upload, database=NO_DATABASE)

    storage = commands.add_parser("storage", help="set up the blob store").add_subparsers(
        dest="action", required=True, metavar="ACTION")
    storage.add_parser(
        "init", help="create the bucket (where the credentials allow) or the folder of "
                     "AFFIX_STORAGE_URL; one that exists is left as it is").set_defaults(
        handler=cmd_storage_init, database=NO_DATABASE)

    plugins = commands.add_parser(
        "plugins", help="list the loaded plugins, their distributions and their hooks")
    plugins.set_defaults(handler=cmd_plugins, database=NO_DATABASE)
    return parser


def main(argv=None, environ=None, out=None, *, server=AffixServer):
    """``server``: what ``affix serve`` runs, gunicorn's server unless a test stands in.

    Exit status: 0 done, 1 the command refused or failed, 2 a bad flag, a bad setting, or
    settings that point at nothing usable (a command other than serve and migrate never makes
    a database: run from the wrong folder, it says where it looked)."""
    args = build_parser().parse_args(argv)
    out = sys.stdout if out is None else out
    environ = os.environ if environ is None else environ
    for warning in unknown_variables(environ, also=(KEY_VARIABLE, CONFIG_VARIABLE)):
        print(f"affix: warning: {warning}", file=sys.stderr)
    if args.handler is cmd_upload:
        return cmd_upload(args, environ, out)
    try:
        settings = load_settings(environ, args.config)
        if args.database == NEEDS_DATABASE:
            try:
                found = database_exists(settings)
            except (peewee.OperationalError, peewee.InterfaceError) as error:
                raise SetupError(unreachable(settings.database_url, error)) from None
            if not found:
                raise SetupError(no_database(settings, environ))
        services = compose(settings)
        handler = args.handler
        if handler is cmd_serve:
            handler = functools.partial(cmd_serve, environ=environ, server=server)
        elif handler is cmd_check:
            handler = functools.partial(cmd_check, environ=environ)
        handler(args, services, out)
    except (SettingsError, SetupError, CheckFailed) as error:
        print(f"affix: error: {error}", file=sys.stderr)
        return 2
    except (CommandError, AccountError, PluginError, MigrationError) as error:
        print(f"affix: error: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
