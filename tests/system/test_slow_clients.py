"""Slow and idle clients against a real server, and the reverse proxy that takes them off
affix's threads: nginx configured exactly as deploy/nginx.conf says."""
import pytest
import requests

from support.bodies import upload_body
from support.net import REQUEST_TIMEOUT
from support.nginx import nginx_in_front
from support.slow_clients import hostile_clients, normal_requests

pytestmark = pytest.mark.system

STALLED_UPLOADS = 16
IDLE_CONNECTIONS = 24
NORMAL_REQUESTS = 12
# a normal request behind nginx is answered at once; this only bounds a failing test
NORMAL_TIMEOUT = 10


def test_behind_nginx_stalled_and_idle_clients_hold_no_thread_of_affix(
        tmp_path, start_server):
    server = start_server()
    with nginx_in_front(tmp_path / "nginx", server.port) as base_url:
        with hostile_clients(base_url, server.auth, STALLED_UPLOADS, IDLE_CONNECTIONS):
            statuses = normal_requests(base_url, server.auth, NORMAL_REQUESTS, NORMAL_TIMEOUT)
        uploaded = sorted(row[1] for row in server.stored.rows())

    assert statuses == [200] * NORMAL_REQUESTS
    assert uploaded == sorted(f"normal-{number}.txt" for number in range(0, NORMAL_REQUESTS, 2))
    # the stalled bodies never reached affix: nothing of them is staged
    assert server.staged_blobs() == []


def test_the_readmes_nginx_limit_lets_the_largest_upload_through(tmp_path, start_server):
    server = start_server(max_attachment_size=5 * 1024 * 1024)
    content = b"x" * (5 * 1024 * 1024)
    body, content_type = upload_body(b'{"fileName": "largest.bin"}', content)
    with nginx_in_front(tmp_path / "nginx", server.port) as base_url:
        response = requests.post(f"{base_url}/api/v3/attachments", data=body,
                                 headers={**server.auth, "Content-Type": content_type},
                                 timeout=REQUEST_TIMEOUT)

    assert response.status_code == 200, response.text
    assert response.json()["fileSize"] == len(content)
