"""A key revoked with ``affix apikey revoke`` is refused by every worker of a real server from
the next request on. (The commands themselves, and two nodes in process:
functional/test_accounts.py.)"""
import requests

from support.cli import run_ok
from support.net import REQUEST_TIMEOUT
from support.servers import WORKERS

# requests made to a real server, so that each of its workers answers some
REQUESTS_PER_WORKER = 5


def test_every_worker_of_a_real_server_refuses_a_key_from_its_revocation_on(server, environ):
    def statuses():
        # a connection of its own each: gunicorn hands each to whichever worker takes it first
        return [requests.get(server.url("/api/v3"), headers=server.auth,
                             timeout=REQUEST_TIMEOUT).status_code
                for _ in range(REQUESTS_PER_WORKER * WORKERS)]

    assert set(statuses()) == {200}
    assert run_ok(environ, "apikey", "revoke", "1") == "revoked API key 1 of 'admin'\n"
    assert set(statuses()) == {401}
