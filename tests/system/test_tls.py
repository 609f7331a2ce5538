"""TLS through nginx, configured exactly as deploy/nginx.conf (the deploying guide's recipe)
says, with a self-signed certificate: uploads and downloads over HTTPS, plain HTTP sent to
HTTPS."""
import dataclasses

import pytest
import requests

from support.content import md5, random_bytes
from support.http import assert_downloads_as, assert_uploaded, upload
from support.net import HOST, REQUEST_TIMEOUT, free_port
from support.nginx import CERTIFICATE, nginx_in_front

# TLS is nginx's business: one database is enough
pytestmark = [pytest.mark.system, pytest.mark.parametrize("databases", ["sqlite"], indirect=True)]


@dataclasses.dataclass
class Proxied:
    """A server reached through nginx: what ``support.http`` needs of it."""
    base_url: str
    auth: dict

    def url(self, path) -> str:
        return f"{self.base_url}{path}"


def test_uploads_and_downloads_over_https_through_the_readmes_nginx(
        tmp_path, server, monkeypatch):
    run_dir = tmp_path / "nginx"
    content = random_bytes(300_000)
    with nginx_in_front(run_dir, server.port, tls=True) as base_url:
        with pytest.raises(requests.exceptions.SSLError):
            requests.get(f"{base_url}/api/v3", headers=server.auth, timeout=REQUEST_TIMEOUT)
        # what a client that trusts the certificate does (requests and `affix upload` alike)
        monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(run_dir / CERTIFICATE))
        proxied = Proxied(base_url, server.auth)
        attachment_id = assert_uploaded(upload(proxied, "over-tls.bin", content),
                                        "over-tls.bin", content)
        assert_downloads_as(proxied, attachment_id, content)

    assert base_url.startswith(f"https://{HOST}:")
    assert [row[1:4] for row in server.stored.rows()] == [
        ("over-tls.bin", len(content), md5(content))]


def test_plain_http_is_sent_to_https(tmp_path, server):
    redirect_port = free_port()
    with nginx_in_front(tmp_path / "nginx", server.port, tls=True,
                        redirect_port=redirect_port):
        response = requests.get(f"http://{HOST}:{redirect_port}/api/v3/attachments/1",
                                allow_redirects=False, timeout=REQUEST_TIMEOUT)

    assert (response.status_code, response.headers["Location"]) == (
        301, f"https://{HOST}/api/v3/attachments/1")
