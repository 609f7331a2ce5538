"""tus's concatenation and creation-defer-length extensions through falcon.testing on the local
store: partial uploads joined by a final one into one attachment, every refusal of a final
upload with what is stored after it, and uploads whose length the client declares late."""
import dataclasses
import datetime
import io
import tracemalloc

import falcon.testing
import pytest

from affix.app import create_app
from affix.storage.blob_store import StoreUnavailable
from affix.storage.cleanup import remove_expired_resumable_uploads
from affix.storage.partials import LocalPartials
from affix.storage.resumable import ResumableUploads
from affix.storage.stores import open_blob_store
from support.content import MiB, md5, png_bytes, random_bytes
from support.defaults import FROZEN_NOW
from support.errors import MAY_NOT_ADD_ATTACHMENTS, UNAVAILABLE, assert_error
from support.inspectors import Inspecting, Recorder
from support.tus import (
    TUS, TUS_PATH, assert_nothing_left, attachments, blob_files, checksum, concat_states, created,
    encode_metadata, final, head, partial, partial_files, patch, token_of, uploads,
)
from support.webhooks import outbox, subscribe
from support.work_packages import created as created_work_package

LIMIT = 8 * 1024 * 1024
# a PNG, so that the type sniffed from the joined bytes is not the one of any part alone
PICTURE = png_bytes(900, 300)
FINAL_IS_NO_TARGET = ("This upload is the concatenation of partial uploads: it takes no bytes "
                      "of its own.")


@pytest.fixture
def settings(settings):
    return dataclasses.replace(settings, max_attachment_size=LIMIT)


def app_with(settings, plugin_manager, **changes):
    return falcon.testing.TestClient(create_app(
        dataclasses.replace(settings, **changes), plugin_manager=plugin_manager,
        clock=lambda: FROZEN_NOW))


def thirds(data):
    third = len(data) // 3
    return [data[:third], data[third:2 * third], data[2 * third:]]


# --- concatenation ---------------------------------------------------------------------------

def test_partial_uploads_joined_by_a_final_one_become_one_attachment(
        client, people, catalog, stored):
    subscription = subscribe(catalog, "http://127.0.0.1:9/hooks", ["attachment.created"],
                             FROZEN_NOW)
    auth = people.auth("ada")
    parts = thirds(PICTURE)
    paths = [partial(client, auth, part) for part in parts]
    # a partial upload needs no metadata, and becomes no attachment when its last byte is in
    assert attachments(catalog) == []
    assert partial_files(stored.blob_root) == {
        token_of(path): part for path, part in zip(paths, parts)}
    answer = head(client, auth, paths[0])
    assert (answer.headers["upload-concat"], answer.headers["upload-offset"]) == (
        "partial", str(len(parts[0])))

    # as tus-js-client names them: absolute URLs; a path does as well
    urls = [f"http://falconframework.org{path}" for path in paths[:2]] + [paths[2]]
    response = final(client, auth, *urls, filename="picture.png", description="A plan")

    assert response.status_code == 201, response.json
    path = response.headers["location"]
    [(attachment_id, *row)] = attachments(catalog)
    assert row == ["picture.png", len(PICTURE), md5(PICTURE), "image/png", "uploaded",
                   None, None]
    assert response.headers["upload-offset"] == str(len(PICTURE))
    assert response.headers["link"] == f'</api/v3/attachments/{attachment_id}>; rel="attachment"'
    assert list(blob_files(stored).values()) == [PICTURE]
    assert partial_files(stored.blob_root) == {}
    assert outbox(catalog) == [(subscription, "attachment.created", attachment_id, False)]
    concat = "final;" + " ".join(urls)
    assert concat_states(catalog) == [
        *[(token_of(each), "partial", token_of(path), False) for each in paths],
        (token_of(path), concat, None, False)]
    answer = head(client, auth, path)
    assert {name: answer.headers[name] for name in (
        "upload-concat", "upload-length", "upload-offset", "link")} == {
        "upload-concat": concat, "upload-length": str(len(PICTURE)),
        "upload-offset": str(len(PICTURE)), "link": response.headers["link"]}
    document = client.simulate_get(f"/api/v3/attachments/{attachment_id}", headers=auth).json
    assert document["description"]["raw"] == "A plan"

    # a final upload takes no bytes (403, as tus says)
    assert_error(patch(client, auth, path, len(PICTURE), b"more"), 403, "MissingPermission",
                 FINAL_IS_NO_TARGET)
    assert list(blob_files(stored).values()) == [PICTURE]


def test_joining_holds_a_chunk_of_the_file_in_memory_not_the_file(
        settings, plugin_manager, people, catalog, stored):
    client = app_with(settings, plugin_manager, max_attachment_size=32 * MiB)
    auth = people.auth("ada")
    content = random_bytes(24 * MiB, seed=30)
    paths = [partial(client, auth, content[start:start + 8 * MiB])
             for start in range(0, len(content), 8 * MiB)]
    tracemalloc.start()
    try:
        response = final(client, auth, *paths)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert response.status_code == 201, response.json
    assert [row[3] for row in attachments(catalog)] == [md5(content)]
    # joining copies a MiB at a time, finishing reads a MiB at a time
    assert peak < 3 * MiB, peak


@pytest.mark.on_cue("partials")
def test_a_final_upload_sent_again_after_a_passing_failure_is_finished_then(
        client, people, catalog, stored, services):
    auth = people.auth("ada")
    paths = [partial(client, auth, part) for part in thirds(PICTURE)]
    services.partials.fail_once("commit", StoreUnavailable("the disk is away"))
    assert_error(final(client, auth, *paths), 503, "ServiceUnavailable", UNAVAILABLE)
    # joined, every byte kept, no attachment yet
    *joined, (token, concat, *_) = concat_states(catalog)
    assert [row[2] for row in joined] == [token] * 3
    assert [row[5] for row in attachments(catalog)] == ["prepared"]
    assert partial_files(stored.blob_root) == {token: PICTURE}

    # tus-js-client sends the final upload again: it is the one it made, finished now
    retried = final(client, auth, *paths)
    assert retried.status_code == 201, retried.json
    assert token_of(retried.headers["location"]) == token
    [(attachment_id, *row)] = attachments(catalog)
    assert row[2:5] == [md5(PICTURE), "image/png", "uploaded"]
    assert list(blob_files(stored).values()) == [PICTURE]
    # and once more, as after an answer that got lost: the same attachment
    again = final(client, auth, *paths)
    assert (again.status_code, again.headers["link"]) == (201, retried.headers["link"])
    assert len(attachments(catalog)) == 1
    # the partial uploads named otherwise are refused, and nothing changes
    before = (uploads(catalog), concat_states(catalog), attachments(catalog), stored.files())
    assert_error(final(client, auth, *reversed(paths)), 400, "InvalidRequestBody",
                 f"Upload-Concat names {paths[-1]}, which is part of another final upload "
                 "already.")
    assert (uploads(catalog), concat_states(catalog), attachments(catalog),
            stored.files()) == before


@pytest.mark.on_cue("partials")
def test_a_store_failing_after_the_join_wrote_leaves_the_partial_uploads_as_they_were(
        client, people, catalog, stored, services):
    auth = people.auth("ada")
    paths = [partial(client, auth, part) for part in thirds(PICTURE)]
    before = (uploads(catalog), concat_states(catalog), stored.files())

    def join_then_fail(join, *args):
        join(*args)
        raise StoreUnavailable("the disk is away")
    services.partials.around("join", join_then_fail)
    assert_error(final(client, auth, *paths), 503, "ServiceUnavailable", UNAVAILABLE)
    # no final upload, none of its bytes; every partial upload ready for the next try
    assert (uploads(catalog), concat_states(catalog), stored.files()) == before
    assert attachments(catalog) == []
    services.partials.restore("join")
    assert final(client, auth, *paths).status_code == 201


def test_inspectors_see_the_joined_bytes_once_in_order(client, people, plugin_manager):
    recorder = Recorder()
    plugin = Inspecting(recorder)
    plugin_manager.register(plugin)
    auth = people.auth("ada")
    paths = [partial(client, auth, part) for part in thirds(PICTURE)]
    assert plugin.asked == []
    assert final(client, auth, *paths).status_code == 201
    assert plugin.asked == [("ada", None)]
    assert b"".join(recorder.chunks) == PICTURE
    assert [(upload.size, upload.md5) for upload in recorder.judged] == [
        (len(PICTURE), md5(PICTURE))]


def test_a_partial_upload_over_the_limit_is_413_before_anything_is_stored(
        settings, plugin_manager, people, catalog, stored):
    client = app_with(settings, plugin_manager, tus_max_size=1000)
    response = client.simulate_post(TUS_PATH, headers={
        **people.auth("ada"), **TUS, "Upload-Length": "1001", "Upload-Concat": "partial"})
    assert_error(response, 413, "PropertyConstraintViolation",
                 "File is too large (maximum size is 1000 Bytes).")
    assert_nothing_left(catalog, stored)


def test_a_final_upload_into_a_work_package_asks_its_permission(client, people, catalog):
    auth = people.auth("ada")
    work_package = created_work_package(client, people, "ada")
    paths = [partial(client, auth, part) for part in thirds(PICTURE)]
    response = final(client, auth, *paths, filename="picture.png",
                     container=f"/api/v3/work_packages/{work_package}")
    assert response.status_code == 201, response.json
    [row] = attachments(catalog)
    assert row[-2:] == ("WorkPackage", work_package)


def test_a_final_upload_into_a_work_package_one_may_not_add_to_is_403_and_keeps_everything(
        client, people, catalog, stored):
    work_package = created_work_package(client, people, "ada")
    # Adam may upload, and sees the work package, but may not add to it
    people.add("adam", permissions=["view_work_packages", "add_work_packages"])
    adam = people.auth("adam")
    paths = [partial(client, adam, part) for part in thirds(PICTURE)]
    before = (uploads(catalog), concat_states(catalog), attachments(catalog), stored.files())

    response = final(client, adam, *paths, filename="picture.png",
                     container=f"/api/v3/work_packages/{work_package}")

    assert_error(response, 403, "MissingPermission", MAY_NOT_ADD_ATTACHMENTS)
    assert (uploads(catalog), concat_states(catalog), attachments(catalog),
            stored.files()) == before


def _refusals(client, people):
    """{case: (the final's partial URLs, status, message)} against three partial uploads of
    Ada's, one unfinished, and one of Bob's."""
    ada, bob = people.auth("ada"), people.auth("bob")
    finished = partial(client, ada, b"first")
    unfinished = partial(client, ada, b"second", sent=3)
    bobs = partial(client, bob, b"bob's")
    whole = created(client, ada, 5)
    used = partial(client, ada, b"used")
    assert final(client, ada, used, filename="used.txt").status_code == 201
    no_partial = "which is no partial upload of yours"
    return {
        "unfinished": ([finished, unfinished], 400,
                       f"Upload-Concat names {unfinished}, which is not finished: it has 3 "
                       f"bytes of 6."),
        "foreign": ([finished, bobs], 400, f"Upload-Concat names {bobs}, {no_partial}."),
        "unknown": ([finished, f"{TUS_PATH}/nothing"], 400,
                    f"Upload-Concat names {TUS_PATH}/nothing, {no_partial}."),
        "not partial": ([finished, whole], 400, f"Upload-Concat names {whole}, {no_partial}."),
        "used": ([finished, used], 400,
                 f"Upload-Concat names {used}, which is part of another final upload already."),
        "twice": ([finished, finished], 400, "Upload-Concat must be partial, or final; and the "
                                             "URLs of partial uploads, each once."),
        "twice, spelled otherwise": (
            [finished, f"http://falconframework.org{finished}"], 400,
            "Upload-Concat must be partial, or final; and the URLs of partial uploads, each "
            "once."),
        "elsewhere": ([finished, "/api/v3/attachments/1"], 400,
                      "Upload-Concat must be partial, or final; and the URLs of partial "
                      "uploads, each once."),
        "none": ([], 400, "Upload-Concat must be partial, or final; and the URLs of partial "
                          "uploads, each once."),
        "no URL": ([finished, f"http://[x{TUS_PATH}/abc"], 400,
                   "Upload-Concat must be partial, or final; and the URLs of partial uploads, "
                   "each once."),
    }


def test_every_refused_final_upload_leaves_the_partial_uploads_as_they_were(
        client, people, catalog, stored):
    cases = _refusals(client, people)
    before = (uploads(catalog), concat_states(catalog), attachments(catalog), stored.files())
    for case, (urls, status, message) in cases.items():
        response = final(client, people.auth("ada"), *urls)
        assert_error(response, status, "InvalidRequestBody", message)
        assert (uploads(catalog), concat_states(catalog), attachments(catalog),
                stored.files()) == before, case


def test_a_final_upload_over_the_size_limit_is_413_before_a_byte_is_joined(
        settings, plugin_manager, people, catalog, stored):
    client = app_with(settings, plugin_manager, tus_max_size=1000)
    auth = people.auth("ada")
    paths = [partial(client, auth, b"x" * 600), partial(client, auth, b"y" * 401)]
    before = (uploads(catalog), concat_states(catalog), stored.files())
    assert_error(final(client, auth, *paths), 413, "PropertyConstraintViolation",
                 "File is too large (maximum size is 1000 Bytes).")
    assert (uploads(catalog), concat_states(catalog), stored.files()) == before
    assert attachments(catalog) == []


@pytest.mark.parametrize("headers", [{"Upload-Length": "5"}, {"Upload-Defer-Length": "1"}])
def test_a_final_upload_takes_no_length(client, people, catalog, stored, headers):
    auth = people.auth("ada")
    path = partial(client, auth, b"12345")
    before = (uploads(catalog), concat_states(catalog), stored.files())
    assert_error(final(client, auth, path, headers=headers), 400, "InvalidRequestBody",
                 "A final upload's length is the sum of its partial uploads': send no "
                 "Upload-Length.")
    assert concat_states(catalog) == [(token_of(path), "partial", None, False)]
    assert (uploads(catalog), concat_states(catalog), stored.files()) == before
    assert attachments(catalog) == []


def test_a_final_upload_needs_a_file_name(client, people, catalog, stored):
    auth = people.auth("ada")
    path = partial(client, auth, b"12345")
    before = (uploads(catalog), concat_states(catalog), stored.files())
    assert_error(final(client, auth, path, description="nameless"), 422,
                 "PropertyConstraintViolation", "File name can't be blank.", "fileName")
    assert concat_states(catalog) == [(token_of(path), "partial", None, False)]
    assert (uploads(catalog), concat_states(catalog), stored.files()) == before
    assert attachments(catalog) == []


def test_a_refused_type_removes_the_joined_upload_and_the_partial_uploads_bytes(
        settings, plugin_manager, people, catalog, stored):
    client = app_with(settings, plugin_manager, allowlist=("text/plain",))
    auth = people.auth("ada")
    paths = [partial(client, auth, part) for part in thirds(PICTURE)]
    response = final(client, auth, *paths)
    assert response.status_code == 422
    assert response.json["_embedded"]["details"]["attribute"] == "file"
    assert attachments(catalog) == []
    assert stored.files() == {}
    # the partial uploads were joined: their rows say so until they expire
    assert [row[2] is not None for row in concat_states(catalog)] == [True] * 3


def test_unknown_upload_concat_is_400(client, people, catalog, stored):
    response = client.simulate_post(TUS_PATH, headers={
        **people.auth("ada"), **TUS, "Upload-Length": "3", "Upload-Concat": "partly"})
    assert_error(response, 400, "InvalidRequestBody", "Upload-Concat must be partial, or "
                 "final; and the URLs of partial uploads, each once.")
    assert_nothing_left(catalog, stored)


def test_partial_uploads_expire_and_are_cleaned_up_like_any(
        client, people, catalog, stored, clock, settings):
    auth = people.auth("ada")
    partial(client, auth, b"unfinished", sent=4)
    joined = partial(client, auth, b"joined")
    assert final(client, auth, joined, filename="joined.txt").status_code == 201
    clock.advance(datetime.timedelta(days=2))
    with catalog.database.connection_context():
        blob_store = open_blob_store(settings.storage_url)
        assert remove_expired_resumable_uploads(
            ResumableUploads(catalog), LocalPartials(blob_store), blob_store, clock()) == 3
    assert uploads(catalog) == []
    assert partial_files(stored.blob_root) == {}
    assert [row[1] for row in attachments(catalog)] == ["joined.txt"]


# --- creation-defer-length -------------------------------------------------------------------

def deferred(client, auth, **metadata):
    response = client.simulate_post(TUS_PATH, headers={
        **auth, **TUS, "Upload-Defer-Length": "1",
        "Upload-Metadata": encode_metadata(**(metadata or {"filename": "stream.png"}))})
    assert response.status_code == 201, response.json
    return response.headers["location"]


@pytest.mark.parametrize("last_patch", ["with the last bytes", "empty"])
def test_an_upload_of_deferred_length_finishes_once_its_length_is_declared(
        client, people, catalog, stored, last_patch):
    auth = people.auth("ada")
    path = deferred(client, auth)
    answer = head(client, auth, path)
    assert answer.headers["upload-defer-length"] == "1"
    assert "upload-length" not in answer.headers
    assert concat_states(catalog) == [(token_of(path), None, None, True)]
    assert patch(client, auth, path, 0, PICTURE[:1000]).status_code == 204
    length = {"Upload-Length": str(len(PICTURE))}
    if last_patch == "empty":
        assert patch(client, auth, path, 1000, PICTURE[1000:]).status_code == 204
        assert attachments(catalog) == []
        response = patch(client, auth, path, len(PICTURE), b"", headers=length)
    else:
        response = patch(client, auth, path, 1000, PICTURE[1000:], headers=length)
    assert response.status_code == 204, response.json
    [(attachment_id, *row)] = attachments(catalog)
    assert row == ["stream.png", len(PICTURE), md5(PICTURE), "image/png", "uploaded",
                   None, None]
    assert list(blob_files(stored).values()) == [PICTURE]
    answer = head(client, auth, path)
    assert answer.headers["upload-length"] == str(len(PICTURE))
    assert "upload-defer-length" not in answer.headers


def test_a_deferred_upload_one_byte_over_the_limit_is_413_and_nothing_is_kept(
        settings, plugin_manager, people, catalog, stored):
    client = app_with(settings, plugin_manager, tus_max_size=1000)
    auth = people.auth("ada")
    path = deferred(client, auth)
    assert patch(client, auth, path, 0, b"a" * 600).status_code == 204
    assert_error(patch(client, auth, path, 600, b"b" * 401), 413,
                 "PropertyConstraintViolation", "File is too large (maximum size is 1000 Bytes).")
    assert_nothing_left(catalog, stored)
    # the limit itself is no byte over
    exact = deferred(client, auth)
    response = patch(client, auth, exact, 0, b"a" * 1000, headers={"Upload-Length": "1000"})
    assert response.status_code == 204, response.json
    assert [row[2] for row in attachments(catalog)] == [1000]


@pytest.mark.parametrize("declared", ["1001", "9" * 5000])
def test_a_declared_length_over_the_limit_is_413_and_nothing_is_kept(
        settings, plugin_manager, people, catalog, stored, declared):
    client = app_with(settings, plugin_manager, tus_max_size=1000)
    auth = people.auth("ada")
    path = deferred(client, auth)
    assert patch(client, auth, path, 0, b"a" * 10).status_code == 204
    assert_error(patch(client, auth, path, 10, b"", headers={"Upload-Length": declared}), 413,
                 "PropertyConstraintViolation", "File is too large (maximum size is 1000 Bytes).")
    assert_nothing_left(catalog, stored)


def test_a_length_declared_below_the_bytes_received_is_400_and_changes_nothing(
        client, people, catalog, stored):
    auth = people.auth("ada")
    path = deferred(client, auth)
    assert patch(client, auth, path, 0, b"a" * 10).status_code == 204
    assert_error(patch(client, auth, path, 10, b"", headers={"Upload-Length": "9"}), 400,
                 "InvalidRequestBody", "Upload-Length must be at least the 10 bytes the upload "
                 "has.")
    assert concat_states(catalog) == [(token_of(path), None, None, True)]
    assert partial_files(stored.blob_root) == {token_of(path): b"a" * 10}


@pytest.mark.parametrize("refused, status, identifier, message", [
    ({"offset": 3}, 409, "UpdateConflict",
     "The upload has 0 bytes: a PATCH continues at Upload-Offset 0, not 3."),
    ({"data": b"hello world"}, 413, "PropertyConstraintViolation",
     "File is too large (maximum size is 5 Bytes)."),
    ({"headers": {"Upload-Checksum": checksum("sha1", b"something else")}}, 460,
     "ChecksumMismatch", "The bytes sent do not match Upload-Checksum: none of them were "
     "stored."),
])
def test_a_refused_patch_declares_no_length(client, people, catalog, stored, refused, status,
                                            identifier, message):
    auth = people.auth("ada")
    path = deferred(client, auth, filename="notes.txt")
    response = patch(client, auth, path, refused.get("offset", 0), refused.get("data", b"hello"),
                     headers={"Upload-Length": "5", **refused.get("headers", {})})
    assert_error(response, status, identifier, message)
    # as it was: its length still to come, no bytes
    assert concat_states(catalog) == [(token_of(path), None, None, True)]
    assert head(client, auth, path).headers["upload-defer-length"] == "1"
    # none of the PATCH's bytes (a checksum's refusal leaves the file it began, empty)
    assert set(partial_files(stored.blob_root).values()) <= {b""}
    # and the client's corrected PATCH is the upload's
    response = patch(client, auth, path, 0, b"hello world", headers={"Upload-Length": "11"})
    assert response.status_code == 204, response.json
    assert list(blob_files(stored).values()) == [b"hello world"]


def test_a_body_without_a_length_past_the_length_it_declares_is_413_naming_it(
        client, people, catalog, stored):
    auth = people.auth("ada")
    path = deferred(client, auth, filename="notes.txt")
    response = client.simulate_patch(path, headers={
        **auth, **TUS, "Upload-Offset": "0", "Upload-Length": "5",
        "Content-Type": "application/offset+octet-stream"},
        extras={"wsgi.input": io.BytesIO(b"hello world")})
    assert_error(response, 413, "PropertyConstraintViolation",
                 "File is too large (maximum size is 5 Bytes).")
    assert concat_states(catalog) == [(token_of(path), None, None, True)]


def test_an_upload_s_declared_length_cannot_change(client, people, catalog, stored):
    auth = people.auth("ada")
    path = created(client, auth, 20)
    assert_error(patch(client, auth, path, 0, b"a", headers={"Upload-Length": "21"}), 400,
                 "InvalidRequestBody", "Upload-Length must stay 20, as the upload declared.")
    assert uploads(catalog) == [(token_of(path), 0, 20, None)]


@pytest.mark.parametrize("headers, message", [
    ({"Upload-Defer-Length": "2"}, "Upload-Defer-Length must be 1."),
    ({"Upload-Defer-Length": "1", "Upload-Length": "3"},
     "Send Upload-Length or Upload-Defer-Length: 1, not both."),
])
def test_an_unusable_deferred_creation_is_400(client, people, catalog, headers, message):
    response = client.simulate_post(TUS_PATH, headers={
        **people.auth("ada"), **TUS, "Upload-Metadata": encode_metadata(filename="a"),
        **headers})
    assert_error(response, 400, "InvalidRequestBody", message)
    assert uploads(catalog) == []


def test_a_partial_upload_of_deferred_length_joins_once_declared(client, people, catalog):
    auth = people.auth("ada")
    response = client.simulate_post(TUS_PATH, headers={
        **auth, **TUS, "Upload-Defer-Length": "1", "Upload-Concat": "partial"})
    path = response.headers["location"]
    assert patch(client, auth, path, 0, b"abc").status_code == 204
    assert_error(final(client, auth, path), 400, "InvalidRequestBody",
                 f"Upload-Concat names {path}, which is not finished: it has 3 bytes of a "
                 f"length not yet declared.")
    assert patch(client, auth, path, 3, b"", headers={"Upload-Length": "3"}).status_code == 204
    assert final(client, auth, path, filename="abc.txt").status_code == 201
    assert [row[1:4] for row in attachments(catalog)] == [("abc.txt", 3, md5(b"abc"))]


def test_options_and_the_spec_describe_both_extensions(client):
    extensions = client.simulate_options(TUS_PATH).headers["tus-extension"].split(",")
    assert {"concatenation", "creation-defer-length"} <= set(extensions)
    paths = client.simulate_get("/api/v3/spec.json").json["paths"]

    def parameters(path, method):
        return {each["name"]: each.get("required", False)
                for each in paths[path][method]["parameters"] if each["in"] == "header"}

    assert parameters(TUS_PATH, "post") == {
        "Tus-Resumable": True, "Upload-Length": False, "Upload-Defer-Length": False,
        "Upload-Concat": False, "Upload-Metadata": False, "Upload-Checksum": False}
    assert parameters(f"{TUS_PATH}/{{id}}", "patch") == {
        "Tus-Resumable": True, "Upload-Offset": True, "Upload-Length": False,
        "Upload-Checksum": False}
    assert {"Upload-Concat", "Upload-Defer-Length"} <= set(
        paths[f"{TUS_PATH}/{{id}}"]["head"]["responses"]["200"]["headers"])

