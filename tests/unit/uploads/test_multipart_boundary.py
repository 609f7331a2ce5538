"""The boundary of a multipart/form-data Content-Type is read as the email package reads it,
whether affix reads it fast (the form clients send) or hands it to the email package."""
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from affix.app.errors import DomainError
from affix.app.uploads.multipart import boundary_read_by_email_package, multipart_boundary

# the same examples on every run and in CI, and no example database
EXAMPLES = settings(max_examples=300, derandomize=True, deadline=None, database=None,
                    suppress_health_check=list(HealthCheck))

boundaries = st.text(alphabet="azAZ09_.-+/:=?'(), \"\\;é", min_size=0, max_size=72)
content_types = st.builds(
    lambda kind, separator, parameter, boundary: f"{kind}{separator}{parameter}={boundary}",
    st.sampled_from(["multipart/form-data", "MULTIPART/FORM-DATA", "multipart/mixed",
                     "multipart/form-data ", "text/plain", ""]),
    st.sampled_from([";", "; ", " ; ", ";  ", ";\t", ","]),
    st.sampled_from(["boundary", "BOUNDARY", "boundary*", "other"]),
    st.one_of(boundaries, boundaries.map(lambda text: f'"{text}"')),
)


def reading(read, content_type):
    """What ``read`` answers for ``content_type``: the boundary, or the error it raises."""
    try:
        return read(content_type)
    except DomainError as error:
        return type(error), error.message


@EXAMPLES
@given(content_types)
def test_every_content_type_is_read_as_the_email_package_reads_it(content_type):
    assert reading(multipart_boundary, content_type) == reading(
        boundary_read_by_email_package, content_type)


@pytest.mark.parametrize("content_type, boundary", [
    # Chromium, Firefox, curl, requests and httpx
    ("multipart/form-data; boundary=----WebKitFormBoundary7MA4YWxkTrZu0gW",
     b"----WebKitFormBoundary7MA4YWxkTrZu0gW"),
    ("multipart/form-data; boundary=----geckoformboundary1f0b3c9e5d7a",
     b"----geckoformboundary1f0b3c9e5d7a"),
    ("multipart/form-data; boundary=------------------------d74496d66958873e",
     b"------------------------d74496d66958873e"),
    ("multipart/form-data; boundary=8c2d9e0f6b1a4c3e9d7f5a2b1c0e4d6f",
     b"8c2d9e0f6b1a4c3e9d7f5a2b1c0e4d6f"),
])
def test_the_content_types_clients_send_are_read_without_the_email_package(
        monkeypatch, content_type, boundary):
    def unused(content_type):
        raise AssertionError("read by the email package")
    monkeypatch.setattr("affix.app.uploads.multipart.boundary_read_by_email_package", unused)
    assert multipart_boundary(content_type) == boundary
