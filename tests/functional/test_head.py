"""HEAD: every resource that answers GET answers HEAD with the same status and headers and no
body (RFC 9110, 9.3.2); a download's HEAD never opens the blob."""
import pytest

from support.client import get, uploaded
from support.content import png_bytes

CONTENT = png_bytes(4, 4)


@pytest.fixture
def attachment_id(client, people):
    return uploaded(client, people, "bob", name="cat.png", content=CONTENT)


def head(client, people, login, path, **headers):
    return client.simulate_head(path, headers={**people.auth(login), **headers})


def headers_of(response) -> dict:
    """A response's headers but its request's own id, which every request has anew."""
    return {name: value for name, value in response.headers.items() if name != "x-request-id"}


@pytest.mark.on_cue("blob_store")
@pytest.mark.parametrize("suffix", ["download", "content"])
def test_a_download_answers_head_with_the_gets_headers_and_no_body(client, people, services,
                                                                    attachment_id, suffix):
    path = f"/api/v3/attachments/{attachment_id}/{suffix}"
    got = get(client, people, "bob", path)
    opened = []
    services.blob_store.around("open", lambda open_, key: opened.append(key) or open_(key))

    headed = head(client, people, "bob", path)

    assert (headed.status_code, headed.content) == (200, b"")
    assert opened == []
    assert headers_of(headed) == headers_of(got)
    assert headed.headers["content-length"] == str(len(CONTENT))
    assert headed.headers["accept-ranges"] == "bytes"


def test_a_ranged_head_names_the_range_it_would_send(client, people, attachment_id):
    path = f"/api/v3/attachments/{attachment_id}/content"

    headed = head(client, people, "bob", path, Range="bytes=1-4")

    assert (headed.status_code, headed.content) == (206, b"")
    assert headed.headers["content-range"] == f"bytes 1-4/{len(CONTENT)}"
    assert headed.headers["content-length"] == "4"
    assert headers_of(headed) == headers_of(get(client, people, "bob", path)) | {
        "content-range": f"bytes 1-4/{len(CONTENT)}", "content-length": "4"}


def test_a_head_of_a_current_copy_is_304(client, people, attachment_id):
    path = f"/api/v3/attachments/{attachment_id}/download"
    etag = get(client, people, "bob", path).headers["etag"]

    headed = head(client, people, "bob", path, **{"If-None-Match": etag})

    assert (headed.status_code, headed.content) == (304, b"")


@pytest.mark.parametrize("path", [
    "/api/v3", "/api/v3/configuration", "/api/v3/projects", "/api/v3/users/2",
    "/api/v3/work_packages", "/api/v3/types", "/api/v3/statuses", "/api/v3/priorities",
])
def test_every_document_answers_head_with_its_length_and_no_body(client, people, path):
    got = get(client, people, "ada", path)

    headed = head(client, people, "ada", path)

    assert (headed.status_code, headed.content) == (200, b"")
    assert headers_of(headed) == headers_of(got)
    assert headed.headers["content-length"] == str(len(got.content))


def test_an_attachment_answers_head_like_get(client, people, attachment_id):
    path = f"/api/v3/attachments/{attachment_id}"
    got = get(client, people, "bob", path)

    headed = head(client, people, "bob", path)

    assert (headed.status_code, headed.content) == (200, b"")
    assert headers_of(headed) == headers_of(got)


def test_head_answers_the_gets_refusals_without_a_body(client, people, attachment_id):
    path = f"/api/v3/attachments/{attachment_id}/download"

    # another's containerless attachment is not found, and nobody without a key gets anything
    assert (head(client, people, "eve", path).status_code,
            head(client, people, "eve", path).content) == (404, b"")
    anonymous = client.simulate_head(path)
    assert (anonymous.status_code, anonymous.content) == (401, b"")
    assert anonymous.headers["www-authenticate"] == 'Basic realm="affix"'


def test_health_answers_head_without_a_key(client):
    assert client.simulate_head("/health").status_code == 200
    assert client.simulate_head("/health/ready").status_code == 200
