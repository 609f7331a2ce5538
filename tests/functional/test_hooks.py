"""Every hook of affix, each through a plugin registered in the test the way a third party writes
one (its own marker, nothing of affix's imported), and plugins found through real entry points of
distributions made on the fly: loading, blocking, listing, and how a broken plugin fails."""
import dataclasses
import hashlib
import importlib
import inspect
import io
import json
import logging
import sys
import textwrap
from typing import Callable

import falcon.testing
import pluggy
import pytest

from affix.app import create_app, open_catalog
from affix.app.cli import commands as cli
from affix.app.settings import Settings
from affix.app.uploads.multipart import SNIFF_SIZE
from affix.plugins.containers import ContainerType
from affix.plugins.manager import (
    PluginError, container_types, create_plugin_manager, known_permissions,
)
from affix.plugins.uploads import UploadCandidate
from support.bodies import UnreadBody, upload_body
from support.cli import BUILT_IN_PERMISSIONS, affix
from support.client import get, upload, uploaded
from support.content import png_bytes
from support.defaults import FROZEN_NOW
from support.errors import (
    CANNOT_BE_CHANGED, DOES_NOT_EXIST, MAY_NOT_UPLOAD, NO_SUCH_ATTACHMENT, NOT_AUTHORIZED,
    NOT_FOUND, assert_error,
)
from support.state import containers, roles
from support.work_packages import document, link

hookimpl = pluggy.HookimplMarker("affix")

MAY_NOT_DELETE = ("You are not allowed to delete this attachment. Missing permission: "
                  "delete_from_folders.")
MAY_NOT_ADD_TO_FOLDERS = f"{NOT_AUTHORIZED} Missing permission: add_to_folders."
INTERNAL_ERROR = "An internal error has occurred."
BUILTIN_LINE = ("builtin (affix built-in): "
                "affix_container_types, affix_permissions, affix_upload_permissions")
# the permissions the built-in plugin alone makes known
BUILTIN_KNOWN = frozenset({
    "view_work_packages", "add_work_packages", "edit_work_packages", "delete_work_packages",
    "add_work_package_attachments", "edit_messages", "edit_wiki_pages",
})


def manager_with(**plugins):
    """A manager with the built-in plugin and ``plugins``, registered under their keyword names
    as an embedding application would; no entry points."""
    manager = create_plugin_manager(load_entry_points=False)
    for name, plugin in plugins.items():
        manager.register(plugin, name=name)
    return manager


def client_with(settings, **plugins):
    """A client of a fresh app on the test's data dir whose manager also holds ``plugins``."""
    return falcon.testing.TestClient(create_app(
        settings, plugin_manager=manager_with(**plugins), clock=lambda: FROZEN_NOW))


def log_records(caplog):
    """(logger, level, message, exception) of every record, in the order they were logged."""
    return [(record.name, record.levelno, record.getMessage(),
             repr(record.exc_info[1]) if record.exc_info else None)
            for record in caplog.records]


# --- affix_upload_permissions ----------------------------------------------------------------

class Minutes:
    @hookimpl
    def affix_upload_permissions(self):
        return ["edit_minutes"]


def test_a_plugins_upload_permission_alone_authorises_an_upload(settings, people, stored):
    people.add("mia", permissions=["edit_minutes"])

    response = upload(client_with(settings, minutes=Minutes()), people, "mia",
                      content=b"minutes")

    assert response.status_code == 200
    [(attachment_id, file_name, size, _, storage_key)] = stored.rows()
    assert (attachment_id, file_name, size) == (response.json["id"], "notes.txt", 7)
    assert stored.files() == {storage_key: b"minutes"}


def test_without_the_plugin_its_permission_authorises_nothing(settings, people, stored):
    people.add("mia", permissions=["edit_minutes"])

    response = upload(client_with(settings), people, "mia", content=b"minutes")

    assert_error(response, 403, "MissingPermission", MAY_NOT_UPLOAD)
    assert stored.snapshot() == ([], {})


# --- a container type: folders ---------------------------------------------------------------

VIEW_FOLDERS = "view_folders"
ADD_TO_FOLDERS = "add_to_folders"
DELETE_FROM_FOLDERS = "delete_from_folders"


@dataclasses.dataclass(frozen=True)
class Folder:
    id: int
    title: str
    project: str  # the identifier of the folder's project


FOLDERS = {
    1: Folder(1, "Specs", "demo"),
    2: Folder(2, "Drafts", "demo"),
    3: Folder(3, "Annex papers", "annex"),
}


@dataclasses.dataclass(frozen=True)
class FolderType:
    """A container type as a plugin author writes it from the hook's documentation: an object
    with ContainerType's attributes, without importing affix."""

    name: str
    segment: str
    find: Callable
    project_of: Callable
    title_of: Callable
    view: frozenset
    add: frozenset
    delete: frozenset


class Folders:
    """Folders kept in a dict, each in a project of affix's catalogue."""

    def __init__(self, name="Folder", segment="folders", make=FolderType):
        self.name = name
        self.segment = segment
        self.make = make

    @hookimpl
    def affix_container_types(self, catalog):
        def project_of(folder):
            return catalog.Project.get(catalog.Project.identifier == folder.project)

        return [self.make(
            name=self.name, segment=self.segment, find=FOLDERS.get, project_of=project_of,
            title_of=lambda folder: folder.title, view=frozenset({VIEW_FOLDERS}),
            add=frozenset({ADD_TO_FOLDERS}), delete=frozenset({DELETE_FROM_FOLDERS}),
        )]


def folder_path(folder_id=1) -> str:
    return f"/api/v3/folders/{folder_id}/attachments"


def folder_link(folder_id=1) -> dict:
    return {"href": f"/api/v3/folders/{folder_id}", "title": FOLDERS[folder_id].title}


def claim(client, people, login, attachment_ids, folder_id=1, content_type="application/json"):
    """Claim attachments for a folder with the JSON form of POST on its attachments."""
    return client.simulate_post(
        folder_path(folder_id), body=json.dumps(
            {"_links": {"attachments": [link(i) for i in attachment_ids]}}),
        headers={**people.auth(login), "Content-Type": content_type},
    )


@pytest.fixture
def crew(people, catalog):
    """Beyond conftest's ada (admin), bob and eve, all of them in the project "demo"; a second
    project "annex" where none of them is a member."""
    people.add("fay", name="Fay Filer", permissions=[
        VIEW_FOLDERS, ADD_TO_FOLDERS, DELETE_FROM_FOLDERS, "add_work_packages",
        "edit_work_packages"])
    people.add("gus", name="Gus Gatherer", permissions=[
        VIEW_FOLDERS, ADD_TO_FOLDERS, "edit_work_packages"])
    people.add("vic", name="Vic Viewer", permissions=[VIEW_FOLDERS])
    people.add("ann", name="Ann Adder", permissions=[ADD_TO_FOLDERS])
    people.add("nora", name="Nora Nobody")
    with catalog.database.connection_context():
        catalog.Project.create(identifier="annex", name="Annex")
    return people


@pytest.fixture
def folders_client(settings, crew):
    return client_with(settings, folders=Folders())


def state(catalog, stored):
    """Everything a refused request must leave as it was: containers, rows and files."""
    return containers(catalog), stored.snapshot()


def test_uploading_into_a_folder(folders_client, crew, catalog, stored):
    png = png_bytes()

    response = upload(folders_client, crew, "fay", name="plan.png", content=png,
                      path=folder_path())

    assert response.status_code == 200
    assert response.json["_links"]["container"] == folder_link()
    assert (response.json["fileName"], response.json["contentType"]) == ("plan.png", "image/png")
    assert containers(catalog) == {1: ("Folder", 1)}
    [(_, _, size, _, storage_key)] = stored.rows()
    assert size == len(png)
    assert stored.files() == {storage_key: png}
    assert get(folders_client, crew, "fay", "/api/v3/attachments/1").json == response.json


def test_the_attachments_of_a_folder_are_a_hal_collection(folders_client, crew):
    first = uploaded(folders_client, crew, "fay", name="a.txt", path=folder_path(1))
    uploaded(folders_client, crew, "fay", name="elsewhere.txt", path=folder_path(2))
    uploaded(folders_client, crew, "fay", name="unclaimed.txt")
    second = uploaded(folders_client, crew, "gus", name="b.txt", path=folder_path(1))

    response = get(folders_client, crew, "vic", folder_path(1))

    assert response.status_code == 200
    assert response.headers["content-type"] == "application/hal+json"
    assert response.json == {
        "_type": "Collection", "total": 2, "count": 2,
        "_embedded": {"elements": [
            get(folders_client, crew, "vic", f"/api/v3/attachments/{attachment_id}").json
            for attachment_id in (first, second)
        ]},
        "_links": {"self": {"href": "/api/v3/folders/1/attachments"}},
    }


# a media type's case is no matter (RFC 9110, 8.3.1)
@pytest.mark.parametrize("content_type", ["application/json", "Application/JSON; charset=UTF-8"])
def test_claiming_for_a_folder(folders_client, crew, catalog, content_type):
    first = uploaded(folders_client, crew, "fay", name="a.txt")
    second = uploaded(folders_client, crew, "fay", name="b.txt")

    response = claim(folders_client, crew, "fay", [first, second], content_type=content_type)

    assert response.status_code == 200
    assert response.json == get(folders_client, crew, "fay", folder_path()).json
    assert [element["_links"]["container"] for element in response.json["_embedded"]["elements"]
            ] == [folder_link(), folder_link()]
    assert containers(catalog) == {first: ("Folder", 1), second: ("Folder", 1)}
    # clients send the whole list back: what the folder holds already is accepted again
    assert claim(folders_client, crew, "fay", [first, second]).status_code == 200
    assert containers(catalog) == {first: ("Folder", 1), second: ("Folder", 1)}


@pytest.mark.parametrize("claimant, target, folder_id, message", [
    ("gus", "fay's unclaimed upload", 1, DOES_NOT_EXIST),
    ("admin", "fay's unclaimed upload", 1, DOES_NOT_EXIST),
    ("fay", "fay's upload claimed for folder 1", 2, CANNOT_BE_CHANGED),
])
def test_a_refused_claim_for_a_folder_changes_nothing(
        folders_client, crew, catalog, stored, claimant, target, folder_id, message):
    crew.add("admin", admin=True)
    targets = {
        "fay's unclaimed upload": uploaded(folders_client, crew, "fay", name="unclaimed.txt"),
        "fay's upload claimed for folder 1": uploaded(
            folders_client, crew, "fay", name="claimed.txt", path=folder_path(1)),
    }
    own = uploaded(folders_client, crew, claimant, name="own.txt")
    before = state(catalog, stored)

    response = claim(folders_client, crew, claimant, [own, targets[target]], folder_id)

    assert_error(response, 422, "PropertyConstraintViolation", message, "attachments")
    # the claimant's own upload, listed first, is not claimed either
    assert state(catalog, stored) == before


@pytest.mark.parametrize("login, path, status, identifier, message", [
    ("vic", folder_path(), 403, "MissingPermission", MAY_NOT_ADD_TO_FOLDERS),
    ("ann", folder_path(), 404, "NotFound", NOT_FOUND),
    ("nora", folder_path(), 404, "NotFound", NOT_FOUND),
    # work-package permissions count for nothing in folders
    ("bob", folder_path(), 404, "NotFound", NOT_FOUND),
    # a folder of a project fay is no member of
    ("fay", folder_path(3), 404, "NotFound", NOT_FOUND),
    ("ada", folder_path(99), 404, "NotFound", NOT_FOUND),
])
@pytest.mark.parametrize("content_type", ["multipart", "application/json"])
def test_a_refused_post_into_a_folder_reads_no_body(
        folders_client, crew, catalog, stored, login, path, status, identifier, message,
        content_type):
    uploaded(folders_client, crew, "fay", path=folder_path())
    before = state(catalog, stored)
    body, multipart_type = upload_body(file=b"never read")
    unread = UnreadBody()

    response = folders_client.simulate_post(path, extras={"wsgi.input": unread}, headers={
        **crew.auth(login), "Content-Length": str(len(body)),
        "Content-Type": multipart_type if content_type == "multipart" else content_type,
    })

    assert_error(response, status, identifier, message)
    assert unread.reads == []
    assert state(catalog, stored) == before


@pytest.mark.parametrize("login, path", [
    ("ann", folder_path()), ("nora", folder_path()), ("fay", folder_path(3)),
    ("ada", folder_path(99)),
])
def test_the_attachments_of_an_invisible_or_unknown_folder_are_404(
        folders_client, crew, login, path):
    assert_error(get(folders_client, crew, login, path), 404, "NotFound", NOT_FOUND)


@pytest.mark.parametrize("login, status, identifier, message", [
    ("vic", 403, "MissingPermission", MAY_NOT_DELETE),
    ("gus", 403, "MissingPermission", MAY_NOT_DELETE),
    ("ann", 404, "NotFound", NO_SUCH_ATTACHMENT),
    ("bob", 404, "NotFound", NO_SUCH_ATTACHMENT),
])
def test_deleting_from_a_folder_is_refused_without_a_delete_permission(
        folders_client, crew, catalog, stored, login, status, identifier, message):
    attachment_id = uploaded(folders_client, crew, "fay", path=folder_path())
    before = state(catalog, stored)
    path = f"/api/v3/attachments/{attachment_id}"
    if status == 403:
        # who may see but not delete is shown no delete link
        assert "delete" not in get(folders_client, crew, login, path).json["_links"]

    response = folders_client.simulate_delete(path, headers=crew.auth(login))

    assert_error(response, status, identifier, message)
    assert state(catalog, stored) == before


@pytest.mark.parametrize("login", ["fay", "ada"])
def test_deleting_from_a_folder_with_the_delete_permission(
        folders_client, crew, catalog, stored, login):
    attachment_id = uploaded(folders_client, crew, "gus", path=folder_path())
    path = f"/api/v3/attachments/{attachment_id}"
    assert get(folders_client, crew, login, path).json["_links"]["delete"] == {
        "href": path, "method": "delete"}

    response = folders_client.simulate_delete(path, headers=crew.auth(login))

    assert (response.status_code, response.text) == (204, "")
    assert state(catalog, stored) == ({}, ([], {}))


@pytest.mark.parametrize("second, claimed", [
    (Folders(name="Binder"), "folders"),
    (Folders(segment="binders"), "Folder"),
    (Folders(name="Job", segment="work_packages"), "work_packages"),
])
def test_two_container_types_with_the_same_segment_or_name_stop_the_app(
        settings, second, claimed):
    with pytest.raises(ValueError) as raised:
        client_with(settings, folders=Folders(), rival=second)
    assert str(raised.value) == f"two container types claim {claimed!r}"


# --- affix_permissions -----------------------------------------------------------------------

class Reports:
    @hookimpl
    def affix_permissions(self):
        return ["view_reports", "export_reports"]


def test_declared_permissions_are_known(catalog):
    manager = manager_with(reports=Reports())
    assert known_permissions(manager, container_types(manager, catalog)) == (
        BUILTIN_KNOWN | {"view_reports", "export_reports"})


@pytest.mark.parametrize("make", [ContainerType, FolderType],
                         ids=["affix's ContainerType", "a type of the plugin's own"])
def test_the_permissions_of_upload_and_container_hooks_are_known_without_being_declared(
        catalog, make):
    manager = manager_with(minutes=Minutes(), folders=Folders(make=make))
    assert known_permissions(manager, container_types(manager, catalog)) == (
        BUILTIN_KNOWN | {"edit_minutes", VIEW_FOLDERS, ADD_TO_FOLDERS, DELETE_FROM_FOLDERS})


# --- affix_validate_upload -------------------------------------------------------------------

class RejectSuffix:
    def __init__(self, suffix, message):
        self.suffix = suffix
        self.message = message

    @hookimpl
    def affix_validate_upload(self, upload):
        if upload.file_name.endswith(self.suffix):
            return self.message
        return None


class PolicyCrash(Exception):
    pass


class CrashOnSuffix:
    def __init__(self, suffix):
        self.suffix = suffix

    @hookimpl
    def affix_validate_upload(self, upload):
        if upload.file_name.endswith(self.suffix):
            raise PolicyCrash(f"cannot check {upload.file_name}")


class Inspector:
    """Accepts everything and writes down what it was shown; declares its arguments in an order
    of its own, since hooks are called by argument name."""

    def __init__(self):
        self.seen = []

    @hookimpl
    def affix_validate_upload(self, user, upload):
        self.seen.append((upload, user.login))


NO_EXECUTABLES = "Executables are not accepted."


def upload_file(client, people, login, name, content=b"bytes", path="/api/v3/attachments"):
    return upload(client, people, login, name=name, content=content, path=path)


@pytest.mark.parametrize("path", ["/api/v3/attachments", folder_path()])
def test_a_policy_rejects_with_a_message_of_its_own(settings, crew, catalog, stored, path):
    client = client_with(settings, folders=Folders(),
                         executables=RejectSuffix(".exe", NO_EXECUTABLES))
    kept = upload_file(client, crew, "fay", "setup.txt", path=path)
    assert kept.status_code == 200
    before = state(catalog, stored)

    response = upload_file(client, crew, "fay", "setup.exe", path=path)

    assert_error(response, 422, "PropertyConstraintViolation", NO_EXECUTABLES, "file")
    # no row, no file: staging included
    assert state(catalog, stored) == before


@pytest.mark.parametrize("order", ["accepting first", "rejecting first"])
def test_every_policy_must_accept(settings, crew, stored, order):
    policies = {"inspector": Inspector(), "executables": RejectSuffix(".exe", NO_EXECUTABLES)}
    if order == "rejecting first":
        policies = dict(reversed(policies.items()))
    client = client_with(settings, **policies)

    response = upload_file(client, crew, "fay", "setup.exe")

    assert_error(response, 422, "PropertyConstraintViolation", NO_EXECUTABLES, "file")
    assert stored.snapshot() == ([], {})


# longer than the head a policy is shown
TEXT = b"".join(b"line %05d of a long text file\n" % number for number in range(1000))


@pytest.mark.parametrize("name, content, path, content_type, container_type", [
    ("cat.png", png_bytes(), "/api/v3/attachments", "image/png", None),
    ("notes.txt", TEXT, folder_path(), "text/plain", "Folder"),
])
def test_a_policy_is_shown_the_received_upload_and_its_uploader(
        settings, crew, name, content, path, content_type, container_type):
    inspector = Inspector()
    client = client_with(settings, folders=Folders(), inspector=inspector)
    metadata = json.dumps({"fileName": name, "description": "for the policy"}).encode()
    body, content_type_header = upload_body(metadata, content)

    response = client.simulate_post(path, body=body, headers={
        **crew.auth("fay"), "Content-Type": content_type_header})

    assert response.status_code == 200
    assert inspector.seen == [(UploadCandidate(
        file_name=name, description="for the policy", size=len(content),
        md5=hashlib.md5(content).hexdigest(), content_type=content_type,
        head=content[:SNIFF_SIZE], container_type=container_type,
    ), "fay")]


@pytest.mark.parametrize("path", ["/api/v3/attachments", folder_path()])
def test_a_policy_that_raises_fails_the_upload_and_stores_nothing(
        settings, crew, catalog, stored, caplog, path):
    client = client_with(settings, folders=Folders(), fragile=CrashOnSuffix(".bin"))
    assert upload_file(client, crew, "fay", "kept.txt", path=path).status_code == 200
    before = state(catalog, stored)
    caplog.clear()

    response = upload_file(client, crew, "fay", "firmware.bin", path=path)

    assert_error(response, 500, "InternalServerError", INTERNAL_ERROR)
    assert state(catalog, stored) == before
    crash = repr(PolicyCrash("cannot check firmware.bin"))
    assert log_records(caplog) == [
        ("affix.plugins.manager", logging.ERROR,
         "plugin 'fragile' failed in affix_validate_upload", crash),
        ("affix.app.http.errors", logging.ERROR, f"unhandled error in POST {path}", crash),
    ]


# --- events ----------------------------------------------------------------------------------

class Recorder:
    """Writes down every event with what was committed at that moment (containers, rows and
    files, read through a connection of its own)."""

    def __init__(self, catalog, stored, journal=None):
        self.catalog = catalog
        self.stored = stored
        self.events = []
        self.journal = [] if journal is None else journal

    def _record(self, hook, attachment, user, *details):
        self.journal.append(("recorder", hook))
        self.events.append((hook, attachment.id, attachment.file_name, *details, user.login,
                            state(self.catalog, self.stored)))

    @hookimpl
    def affix_attachment_created(self, attachment, user):
        self._record("created", attachment, user)

    @hookimpl
    def affix_attachment_claimed(self, attachment, container, user):
        self._record("claimed", attachment, user, (type(container).__name__, container.id))

    @hookimpl
    def affix_attachment_deleted(self, attachment, user):
        self._record("deleted", attachment, user)


class Faulty:
    """An event handler whose service is down."""

    def __init__(self, name, journal):
        self.name = name
        self.journal = journal

    def _fail(self, hook):
        self.journal.append((self.name, hook))
        raise RuntimeError(f"{self.name} is down")

    @hookimpl
    def affix_attachment_created(self):
        self._fail("created")

    @hookimpl
    def affix_attachment_claimed(self):
        self._fail("claimed")

    @hookimpl
    def affix_attachment_deleted(self):
        self._fail("deleted")


@pytest.fixture
def recorder(catalog, stored):
    return Recorder(catalog, stored)


@pytest.fixture
def watched(settings, crew, recorder):
    """A client whose app tells the recorder every event; with folders, and a policy that
    rejects executables and one that fails on .bin files."""
    return client_with(settings, folders=Folders(), recorder=recorder,
                       executables=RejectSuffix(".exe", NO_EXECUTABLES),
                       fragile=CrashOnSuffix(".bin"))


def create_work_package(client, people, login, attachment_ids):
    return client.simulate_post("/api/v3/work_packages", headers=people.auth(login),
                                json=document(attachments=[link(i) for i in attachment_ids]))


@pytest.mark.parametrize("path, container", [
    ("/api/v3/attachments", (None, None)), (folder_path(), ("Folder", 1))])
def test_created_is_told_after_the_upload_is_committed(
        watched, crew, recorder, catalog, stored, path, container):
    response = upload(watched, crew, "fay", path=path)

    assert response.status_code == 200
    assert recorder.events == [
        ("created", response.json["id"], "notes.txt", "fay", state(catalog, stored))]
    assert containers(catalog) == {response.json["id"]: container}


def test_claimed_is_told_after_a_work_package_claims_at_creation(
        watched, crew, recorder, catalog, stored):
    first = uploaded(watched, crew, "ada", name="a.txt")
    second = uploaded(watched, crew, "ada", name="b.txt")
    recorder.events.clear()

    response = create_work_package(watched, crew, "ada", [first, second])

    assert response.status_code == 201
    committed = state(catalog, stored)
    assert committed[0] == {first: ("WorkPackage", 1), second: ("WorkPackage", 1)}
    assert recorder.events == [
        ("claimed", first, "a.txt", ("WorkPackage", 1), "ada", committed),
        ("claimed", second, "b.txt", ("WorkPackage", 1), "ada", committed),
    ]


def test_claimed_is_told_after_a_claim_for_a_folder(watched, crew, recorder, catalog, stored):
    first = uploaded(watched, crew, "fay", name="a.txt")
    second = uploaded(watched, crew, "fay", name="b.txt")
    recorder.events.clear()

    assert claim(watched, crew, "fay", [first, second], folder_id=2).status_code == 200

    committed = state(catalog, stored)
    assert committed[0] == {first: ("Folder", 2), second: ("Folder", 2)}
    assert recorder.events == [
        ("claimed", first, "a.txt", ("Folder", 2), "fay", committed),
        ("claimed", second, "b.txt", ("Folder", 2), "fay", committed),
    ]
    # sending the list again claims nothing new: no event
    recorder.events.clear()
    assert claim(watched, crew, "fay", [first, second], folder_id=2).status_code == 200
    assert recorder.events == []


def test_deleted_is_told_the_row_as_it_was_after_row_and_bytes_are_gone(
        watched, crew, recorder):
    attachment_id = uploaded(watched, crew, "fay", name="gone.txt", path=folder_path())
    recorder.events.clear()

    response = watched.simulate_delete(f"/api/v3/attachments/{attachment_id}",
                                       headers=crew.auth("fay"))

    assert response.status_code == 204
    assert recorder.events == [("deleted", attachment_id, "gone.txt", "fay", ({}, ([], {})))]


def test_a_failing_handler_is_logged_and_neither_undoes_nor_fails_the_request(
        settings, crew, catalog, stored, caplog):
    journal = []
    recorder = Recorder(catalog, stored, journal)
    # the recorder sits between two failing handlers: in whichever order they are called, it
    # runs after one failure and another handler runs after it
    client = client_with(settings, webhook=Faulty("webhook", journal), recorder=recorder,
                         audit=Faulty("audit", journal))

    def assert_all_ran_and_failures_logged(hook):
        assert journal in ([("webhook", hook), ("recorder", hook), ("audit", hook)],
                           [("audit", hook), ("recorder", hook), ("webhook", hook)])
        assert sorted(log_records(caplog)) == [
            ("affix.plugins.manager", logging.ERROR,
             f"plugin {name!r} failed in affix_attachment_{hook}",
             repr(RuntimeError(f"{name} is down")))
            for name in ("audit", "webhook")
        ]
        journal.clear()
        caplog.clear()

    caplog.clear()
    response = upload(client, crew, "ada", content=b"kept")
    assert response.status_code == 200
    attachment_id = response.json["id"]
    assert_all_ran_and_failures_logged("created")
    assert recorder.events[-1] == ("created", attachment_id, "notes.txt", "ada",
                                   state(catalog, stored))
    [(_, _, _, _, storage_key)] = stored.rows()
    assert stored.files() == {storage_key: b"kept"}

    assert create_work_package(client, crew, "ada", [attachment_id]).status_code == 201
    assert_all_ran_and_failures_logged("claimed")
    assert containers(catalog) == {attachment_id: ("WorkPackage", 1)}

    response = client.simulate_delete(f"/api/v3/attachments/{attachment_id}",
                                      headers=crew.auth("ada"))
    assert response.status_code == 204
    assert_all_ran_and_failures_logged("deleted")
    assert state(catalog, stored) == ({}, ([], {}))
    assert [event[0] for event in recorder.events] == ["created", "claimed", "deleted"]


def _bad_body(client, people):
    return client.simulate_post("/api/v3/attachments", body=b"not multipart", headers={
        **people.auth("fay"), "Content-Type": "multipart/form-data; boundary=x"})


# each: what the request does, given the scene's attachment ids; its status
REFUSED_REQUESTS = {
    "upload without permission": (
        lambda client, people, ids: upload(client, people, "nora"), 403),
    "upload rejected by a policy": (
        lambda client, people, ids: upload_file(client, people, "fay", "setup.exe"), 422),
    "upload whose policy failed": (
        lambda client, people, ids: upload_file(client, people, "fay", "firmware.bin"), 500),
    "upload with a bad body": (lambda client, people, ids: _bad_body(client, people), 400),
    "upload into a folder without add": (
        lambda client, people, ids: upload(client, people, "vic", path=folder_path()), 403),
    "work package claiming another's upload": (
        lambda client, people, ids: create_work_package(
            client, people, "fay", [ids["fay's"], ids["gus's"]]), 422),
    "folder claiming another's upload": (
        lambda client, people, ids: claim(client, people, "fay", [ids["fay's"], ids["gus's"]]),
        422),
    "folder claiming a claimed attachment": (
        lambda client, people, ids: claim(client, people, "fay", [ids["fay's"], ids["filed"]],
                                          folder_id=2), 422),
    "delete without permission": (
        lambda client, people, ids: client.simulate_delete(
            f"/api/v3/attachments/{ids['filed']}", headers=people.auth("vic")), 403),
}


@pytest.mark.parametrize("request_of, status", REFUSED_REQUESTS.values(),
                         ids=REFUSED_REQUESTS.keys())
def test_a_refused_request_tells_no_plugin_anything(
        watched, crew, recorder, catalog, stored, request_of, status):
    ids = {
        "fay's": uploaded(watched, crew, "fay", name="mine.txt"),
        "gus's": uploaded(watched, crew, "gus", name="theirs.txt"),
        "filed": uploaded(watched, crew, "fay", name="filed.txt", path=folder_path(1)),
    }
    recorder.events.clear()
    before = state(catalog, stored)

    response = request_of(watched, crew, ids)

    assert response.status_code == status
    assert recorder.events == []
    assert state(catalog, stored) == before


# --- plugins found through entry points ------------------------------------------------------

class Site:
    """A folder on sys.path holding distributions as pip installs them: a module, and a
    ``.dist-info`` folder with the metadata and entry points importlib.metadata reads."""

    def __init__(self, root):
        self.root = root
        self.root.mkdir()
        self.modules = []

    def install(self, name, source, *, version="1.0", target=None) -> str:
        """Distribution ``affix-<name>`` with module ``affix_<name>`` and entry point ``<name>``
        (pointing at ``target``, the module by default); the module's name."""
        module = f"affix_{name}"
        distribution = f"affix-{name}"
        dist_info = self.root / f"affix_{name}-{version}.dist-info"
        dist_info.mkdir()
        (dist_info / "METADATA").write_text(
            f"Metadata-Version: 2.1\nName: {distribution}\nVersion: {version}\n")
        (dist_info / "entry_points.txt").write_text(f"[affix]\n{name} = {target or module}\n")
        (self.root / f"{module}.py").write_text(textwrap.dedent(source))
        self.modules.append(module)
        # the import system caches directory listings
        importlib.invalidate_caches()
        return module

    def path_of(self, module) -> str:
        return str(self.root / f"{module}.py")


@pytest.fixture
def site(tmp_path, monkeypatch):
    site = Site(tmp_path / "site")
    monkeypatch.syspath_prepend(str(site.root))
    yield site
    # loading imported the plugins; no later test may find them already imported
    for module in site.modules:
        sys.modules.pop(module, None)


REPORTS_SOURCE = """\
    import pluggy

    hookimpl = pluggy.HookimplMarker("affix")
    created = []


    @hookimpl
    def affix_permissions():
        return ["export_reports"]


    @hookimpl
    def affix_attachment_created(attachment):
        created.append(attachment.file_name)
"""
REPORTS_LINE = "reports (affix-reports 2.0): affix_attachment_created, affix_permissions"

# each: the module's source, the entry point's target (None: the module), the error
BROKEN_IMPORTS = {
    "missing dependency": (
        "import affix_reporting_backend\n", None,
        "ModuleNotFoundError: No module named 'affix_reporting_backend'"),
    "raises while importing": (
        "raise RuntimeError('AFFIX_REPORTS_TOKEN is not set')\n", None,
        "RuntimeError: AFFIX_REPORTS_TOKEN is not set"),
    "entry point names a missing object": (
        "PLUGIN = None\n", "affix_broken:plugin",
        "AttributeError: module 'affix_broken' has no attribute 'plugin'"),
}
UNKNOWN_HOOK_SOURCE = """\
    import pluggy

    hookimpl = pluggy.HookimplMarker("affix")


    @hookimpl
    def affix_no_such_hook():
        pass
"""
UNKNOWN_ARGUMENT_SOURCE = """\
    import pluggy

    hookimpl = pluggy.HookimplMarker("affix")


    @hookimpl
    def affix_validate_upload(file):
        pass
"""


def cli_roles(environ):
    catalog = open_catalog(Settings.from_environ(environ))
    try:
        return roles(catalog)
    finally:
        catalog.database.close()


@pytest.fixture(params=BROKEN_IMPORTS.values(), ids=BROKEN_IMPORTS.keys())
def broken(request, site):
    """An installed plugin that fails to import; the exact message of its failure."""
    source, target, error = request.param
    site.install("broken", source, target=target)
    return f"plugin 'broken' (from affix-broken 1.0) failed to import: {error}"


def test_an_installed_plugin_is_loaded_when_the_app_is_created(site, settings, people):
    module = site.install("reports", REPORTS_SOURCE, version="2.0")
    client = falcon.testing.TestClient(create_app(settings))

    assert upload(client, people, "ada", name="q3.txt").status_code == 200

    assert sys.modules[module].created == ["q3.txt"]


def test_a_disabled_plugin_is_not_even_imported(site, settings, people):
    module = site.install("reports", REPORTS_SOURCE, version="2.0")
    client = falcon.testing.TestClient(
        create_app(dataclasses.replace(settings, disabled_plugins=("reports",))))

    assert upload(client, people, "ada", name="q3.txt").status_code == 200

    assert module not in sys.modules


def test_the_plugins_command_lists_each_plugin_its_distribution_and_hooks(site, environ):
    site.install("reports", REPORTS_SOURCE, version="2.0")
    assert affix(environ, "plugins") == (0, f"{BUILTIN_LINE}\n{REPORTS_LINE}\n")


def test_role_add_accepts_a_permission_an_installed_plugin_declares(site, environ):
    site.install("reports", REPORTS_SOURCE, version="2.0")

    assert affix(environ, "role", "add", "reporter", "export_reports", "view_work_packages") == (
        0, "created role 'reporter' with export_reports, view_work_packages\n")
    assert cli_roles(environ) == {"reporter": ["export_reports", "view_work_packages"]}


def test_a_disabled_plugins_permission_is_unknown(site, environ, capsys):
    site.install("reports", REPORTS_SOURCE, version="2.0")
    environ["AFFIX_DISABLE_PLUGINS"] = "reports"

    assert affix(environ, "role", "add", "reporter", "export_reports") == (1, "")
    assert capsys.readouterr().err == (
        "affix: error: unknown permission 'export_reports'; "
        f"known permissions: {BUILT_IN_PERMISSIONS}\n")
    assert cli_roles(environ) == {}


@pytest.mark.parametrize("start", [
    lambda settings: create_plugin_manager(),
    lambda settings: create_app(settings),
], ids=["plugin manager", "app"])
def test_a_plugin_that_fails_to_import_stops_the_start(broken, settings, start):
    with pytest.raises(PluginError) as raised:
        start(settings)
    assert str(raised.value) == broken


def test_serve_with_a_plugin_that_fails_to_import_prints_one_line_and_starts_nothing(
        broken, databases, tmp_path, capsys):
    # a first start: serve would make the database
    environ = databases.environ(tmp_path / "data")
    started = []

    class NeverStarted:
        """Stands in for the gunicorn server: reaching it would start a server."""

        def __init__(self, *args):
            started.append(args)

        def run(self):
            pass

    status = cli.main(["serve", "--bind", "127.0.0.1:0"], environ=environ, out=io.StringIO(),
                      server=NeverStarted)

    # the line of the failing check, as affix check says it
    assert status == 2
    assert capsys.readouterr() == ("", f"affix: error: plugins: {broken}\n")
    assert started == []
    # stopped before the data dir or the database was made
    assert not (tmp_path / "data").exists()
    assert affix(environ, "check") == (
        2, f"ok  settings  data folder {environ['AFFIX_DATA_DIR']}\n")
    assert capsys.readouterr().err == f"affix: error: plugins: {broken}\n"


def test_disabling_a_broken_plugin_lets_the_start_proceed(broken, site, environ, settings):
    site.install("reports", REPORTS_SOURCE, version="2.0")
    environ["AFFIX_DISABLE_PLUGINS"] = "other, broken"

    assert affix(environ, "plugins") == (0, f"{BUILTIN_LINE}\n{REPORTS_LINE}\n")
    # the app starts too: no PluginError
    create_app(dataclasses.replace(settings, disabled_plugins=("broken",)))


def test_a_plugin_implementing_an_unknown_hook_stops_the_start(site, environ, capsys):
    module = site.install("typo", UNKNOWN_HOOK_SOURCE)
    message = ("plugin 'typo' (from affix-typo 1.0) cannot be used: unknown hook "
               f"'affix_no_such_hook' in plugin <module '{module}' from '{site.path_of(module)}'>")

    with pytest.raises(PluginError) as raised:
        create_plugin_manager()
    assert str(raised.value) == message

    assert affix(environ, "plugins") == (1, "")
    assert capsys.readouterr().err == f"affix: error: {message}\n"


def test_a_hook_with_an_argument_its_spec_lacks_stops_the_start_with_one_line(
        site, environ, capsys):
    site.install("typo", UNKNOWN_ARGUMENT_SOURCE)

    assert affix(environ, "plugins") == (1, "")
    error = capsys.readouterr().err
    assert error.startswith(
        "affix: error: plugin 'typo' (from affix-typo 1.0) cannot be used: ")
    assert "'file'" in error
    # the command's contract: one line on stderr
    assert error.count("\n") == 1, error


# --- every hook is called through pluggy: wrappers, tryfirst and trylast ----------------------

class Wrapping:
    """pluggy's new-style wrapper on ``hook_name``: writes down the result it saw, and hands on
    ``change(result, arguments)`` in its place."""

    def __init__(self, hook_name, change=lambda result, arguments: result):
        self.seen = []

        def wrapper(**arguments):
            result = yield
            self.seen.append(result)
            return change(result, arguments)

        # a hook implementation is found by its name; pluggy reads the arguments it declares
        setattr(self, hook_name, hookimpl(wrapper=True)(_with_arguments(wrapper, hook_name)))


def _with_arguments(wrapper, hook_name):
    """``wrapper`` declaring exactly the arguments of the hook's spec, as pluggy requires."""
    from affix.plugins import hookspecs
    names = list(inspect.signature(getattr(hookspecs, hook_name)).parameters)
    namespace = {"wrapper": wrapper}
    exec(f"def {hook_name}({', '.join(names)}):\n"
         f"    return (yield from wrapper({', '.join(f'{n}={n}' for n in names)}))\n", namespace)
    return namespace[hook_name]


class Names:
    """Answers ``affix_authenticate`` with ``login``, at pluggy's ``tryfirst`` or ``trylast``."""

    def __init__(self, login, **order):
        @hookimpl(**order)
        def affix_authenticate():
            return login
        self.affix_authenticate = affix_authenticate


class Rejects:
    """Rejects every upload with ``message``, at pluggy's ``tryfirst`` or ``trylast``."""

    def __init__(self, message, **order):
        @hookimpl(**order)
        def affix_validate_upload():
            return message
        self.affix_validate_upload = affix_validate_upload


def test_a_wrapper_on_authenticate_sees_and_may_change_the_login(settings, people):
    wrapper = Wrapping("affix_authenticate", lambda logins, _: [
        "bob" if login == "nobody" else login for login in logins])
    client = client_with(settings, host=Names("nobody"), wrapper=wrapper)

    response = client.simulate_get("/api/v3")

    assert response.json["_links"]["user"] == {"href": "/api/v3/users/2", "title": "Bob Builder"}
    assert wrapper.seen == [["nobody"]]


@pytest.mark.parametrize("registered", [["first", "last"], ["last", "first"]])
def test_tryfirst_and_trylast_order_authenticate_whatever_the_registration(
        settings, people, registered):
    plugins = {"first": Names("bob", tryfirst=True), "last": Names("eve", trylast=True)}
    client = client_with(settings, **{name: plugins[name] for name in registered})

    response = client.simulate_get("/api/v3")

    assert response.json["_links"]["user"] == {"href": "/api/v3/users/2", "title": "Bob Builder"}


def test_a_wrapper_on_upload_permissions_may_add_one(settings, crew, stored):
    wrapper = Wrapping("affix_upload_permissions", lambda lists, _: [*lists, [VIEW_FOLDERS]])
    client = client_with(settings, wrapper=wrapper)

    response = upload(client, crew, "vic")

    assert response.status_code == 200, response.json
    assert [row[1] for row in stored.rows()] == ["notes.txt"]
    [lists] = wrapper.seen
    assert sorted(name for names in lists for name in names) == sorted(
        ["edit_work_packages", "add_work_packages", "edit_messages", "edit_wiki_pages"])


def test_a_wrapper_on_permissions_may_declare_one(catalog):
    wrapper = Wrapping("affix_permissions", lambda lists, _: [*lists, ["approve_budgets"]])
    manager = manager_with(wrapper=wrapper)

    known = known_permissions(manager, container_types(manager, catalog))

    assert known == BUILTIN_KNOWN | {"approve_budgets"}
    assert len(wrapper.seen) == 1


def test_a_wrapper_on_container_types_sees_every_type_and_may_add_one(
        settings, crew, catalog, stored):
    wrapper = Wrapping("affix_container_types", lambda lists, arguments: [
        *lists, Folders().affix_container_types(arguments["catalog"])])
    client = client_with(settings, wrapper=wrapper)

    response = upload(client, crew, "fay", path=folder_path())

    assert response.status_code == 200, response.json
    assert containers(catalog) == {1: ("Folder", 1)}
    [lists] = wrapper.seen
    assert [kind.name for kinds in lists for kind in kinds] == ["WorkPackage"]


def test_a_wrapper_on_validate_upload_passes_uploads_through(settings, crew, stored):
    # the wrapper that pluggy's documentation shows: before, pluggy was bypassed and the
    # generator it returned read as a rejection of every upload
    wrapper = Wrapping("affix_validate_upload")
    client = client_with(settings, wrapper=wrapper)

    response = upload(client, crew, "fay", name="fine.txt")

    assert response.status_code == 200, response.json
    # pluggy's list of the policies' answers that were not None: none
    assert wrapper.seen == [[]]
    assert [row[1] for row in stored.rows()] == ["fine.txt"]


def test_a_wrapper_on_validate_upload_may_reword_a_rejection(settings, crew, catalog, stored):
    wrapper = Wrapping("affix_validate_upload",
                       lambda messages, _: [f"Refused by policy: {message}"
                                            for message in messages if message])
    client = client_with(settings, executables=RejectSuffix(".exe", NO_EXECUTABLES),
                         wrapper=wrapper)
    before = state(catalog, stored)

    response = upload(client, crew, "fay", name="setup.exe")

    assert_error(response, 422, "PropertyConstraintViolation",
                 f"Refused by policy: {NO_EXECUTABLES}", "file")
    assert state(catalog, stored) == before


@pytest.mark.parametrize("registered", [["first", "last"], ["last", "first"]])
def test_the_tryfirst_policys_message_is_the_one_given(settings, crew, stored, registered):
    plugins = {"first": Rejects("first says no", tryfirst=True),
               "last": Rejects("last says no", trylast=True)}
    client = client_with(settings, **{name: plugins[name] for name in registered})

    response = upload(client, crew, "fay", name="setup.exe")

    assert_error(response, 422, "PropertyConstraintViolation", "first says no", "file")
    assert stored.snapshot() == ([], {})


@pytest.mark.parametrize("empty", ["", None, 0])
def test_an_empty_answer_accepts_and_never_keeps_another_policy_from_refusing(
        settings, crew, catalog, stored, empty):
    # registered last, so pluggy asks it first; pluggy's firstresult would stop at its ""
    client = client_with(settings, executables=RejectSuffix(".exe", NO_EXECUTABLES),
                         quiet=Rejects(empty, tryfirst=True))
    before = state(catalog, stored)

    refused = upload(client, crew, "fay", name="setup.exe")
    accepted = upload(client, crew, "fay", name="notes.txt")

    assert_error(refused, 422, "PropertyConstraintViolation", NO_EXECUTABLES, "file")
    assert accepted.status_code == 200, accepted.json
    assert [row[1] for row in stored.rows()] == [*[row[1] for row in before[1][0]], "notes.txt"]


EVENT_HOOKS = ["affix_attachment_created", "affix_attachment_claimed", "affix_attachment_deleted"]


@pytest.mark.parametrize("hook_name", EVENT_HOOKS)
def test_a_wrapper_on_an_event_runs_around_the_handlers_even_a_failing_one(
        settings, crew, catalog, stored, caplog, hook_name):
    journal = []
    wrapper = Wrapping(hook_name)
    client = client_with(settings, faulty=Faulty("audit", journal), wrapper=wrapper)
    attachment_id = uploaded(client, crew, "ada")
    assert create_work_package(client, crew, "ada", [attachment_id]).status_code == 201
    deleted = client.simulate_delete(f"/api/v3/attachments/{attachment_id}",
                                     headers=crew.auth("ada"))

    assert deleted.status_code == 204
    # the failing handler ran, was logged, and the wrapper still saw the call end normally,
    # with pluggy's list of the answers that were not None: none
    assert journal == [("audit", "created"), ("audit", "claimed"), ("audit", "deleted")]
    assert wrapper.seen == [[]]
    assert state(catalog, stored) == ({}, ([], {}))


@pytest.mark.parametrize("hook_name", EVENT_HOOKS)
def test_tryfirst_and_trylast_order_the_event_handlers(settings, crew, hook_name):
    journal = []

    def handler(name, **order):
        plugin = type(name, (), {})()
        setattr(plugin, hook_name, hookimpl(**order)(lambda: journal.append(name)))
        return plugin

    # registered last, so pluggy would call it first but for trylast
    client = client_with(settings, early=handler("early", tryfirst=True),
                         plain=handler("plain"), late=handler("late", trylast=True))
    attachment_id = uploaded(client, crew, "ada")
    assert create_work_package(client, crew, "ada", [attachment_id]).status_code == 201
    client.simulate_delete(f"/api/v3/attachments/{attachment_id}", headers=crew.auth("ada"))

    assert journal == ["early", "plain", "late"]
