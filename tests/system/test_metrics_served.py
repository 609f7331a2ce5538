"""The metrics of a real ``affix serve``: gunicorn with two workers, each counting its own
requests, scraped whole from either (prometheus_client's multiprocess mode)."""
import concurrent.futures
import os
import signal
import socket

import pytest
import requests

from affix.app.testing import upload_form
from support.http import request_head
from support.logs import wait_for_access_lines
from support.net import HOST, REQUEST_TIMEOUT, free_port
from support.scrape import scrape
from support.servers import HIGH_LIMIT, WORKERS, running_server
from support.waiting import wait_for

pytestmark = pytest.mark.system

UPLOADS = "/api/v3/attachments"
# uploads sent at once, each on a connection of its own, so that both workers take some: twice
# a worker's threads, since with as many as one worker's threads one worker took every upload
# of ten rounds in a clean-clone CI run (2026-12-07), its accept loop the first awake
AT_ONCE = 16
# rounds of AT_ONCE uploads at most, until both workers have taken some
MAX_ROUNDS = 10


@pytest.fixture
def metered_server(tmp_path, databases):
    """(server, metrics port) of an affix serve with metrics and JSON logs."""
    port = free_port()
    with running_server(tmp_path, databases, HIGH_LIMIT, {
            "AFFIX_METRICS_BIND": f"{HOST}:{port}", "AFFIX_LOG_FORMAT": "json"}) as server:
        yield server, port


def send_upload(server, size):
    body, content_type = upload_form(f"file-{size}.bin", os.urandom(size))
    response = requests.post(server.url(UPLOADS), data=body, timeout=REQUEST_TIMEOUT, headers={
        **server.auth, "Content-Type": content_type, "Connection": "close"})
    assert response.status_code == 200, response.text
    return size


def upload_until_both_workers_took_some(server) -> list:
    """The sizes of the uploads sent: rounds of them at once until each worker took some, as
    their access lines tell."""
    sizes = []
    with concurrent.futures.ThreadPoolExecutor(AT_ONCE) as pool:
        for _ in range(MAX_ROUNDS):
            round_sizes = [1000 + 37 * (len(sizes) + each) for each in range(AT_ONCE)]
            sizes += pool.map(lambda size: send_upload(server, size), round_sizes)
            lines = wait_for_access_lines(server, len(sizes), route=UPLOADS, status=200)
            if len({line["pid"] for line in lines}) == WORKERS:
                return sizes
    pytest.fail(f"{len(sizes)} uploads in {MAX_ROUNDS} rounds all went to one worker")


def test_the_counts_of_both_workers_add_up(metered_server):
    server, port = metered_server
    sizes = upload_until_both_workers_took_some(server)
    for _ in range(3):
        assert requests.get(server.url(UPLOADS + "/1"), timeout=REQUEST_TIMEOUT,
                            headers={"Connection": "close"}).status_code == 401

    # each scrape on a connection of its own, answered by either worker
    for _ in range(2 * WORKERS):
        scraped = scrape(port)
        assert scraped.value("affix_http_requests_total", method="POST", route=UPLOADS,
                             status="200") == len(sizes)
        assert scraped.value("affix_http_request_duration_seconds_count", method="POST",
                             route=UPLOADS) == len(sizes)
        assert scraped.value("affix_upload_size_bytes_count") == len(sizes)
        assert scraped.value("affix_upload_size_bytes_sum") == sum(sizes)
        assert scraped.value("affix_upload_duration_seconds_count") == len(sizes)
        assert scraped.value("affix_refusals_total", reason="Unauthenticated") == 3
        assert scraped.value("affix_http_requests_total", method="GET",
                             route="/api/v3/attachments/{attachment_id:id}", status="401") == 3
        assert scraped.value("affix_http_requests_in_progress") == 0
        assert scraped.value("affix_attachments_awaiting_cleanup") == 0


def scrape_once_up(port):
    """A scrape, once a worker answers on the metrics listener again."""
    scraped = []

    def answered():
        try:
            scraped[:] = [scrape(port)]
        except requests.ConnectionError:
            return False
        return True

    wait_for(answered, "a worker to answer a scrape")
    return scraped[0]


def test_workers_killed_mid_upload_leave_their_counts_and_no_request_in_progress(
        metered_server):
    server, port = metered_server
    for size in (100, 200, 300):
        send_upload(server, size)
    body, content_type = upload_form("cut.bin", os.urandom(64 * 1024))
    stalled = socket.create_connection((HOST, server.port))
    stalled.sendall(request_head(server, content_type, len(body)) + body[:1000])
    wait_for(lambda: scrape(port).value("affix_http_requests_in_progress") == 1,
             "the stalled upload to be in progress")
    killed = server.worker_pids()

    for pid in killed:
        os.kill(pid, signal.SIGKILL)
    wait_for(lambda: len(server.worker_pids() - killed) == WORKERS, "new workers")
    stalled.close()

    scraped = scrape_once_up(port)
    # gunicorn's child_exit marked them dead: their uploads stay counted, the stalled one is
    # no longer in progress
    assert scraped.value("affix_http_requests_in_progress") == 0
    assert scraped.value("affix_http_requests_total", method="POST", route=UPLOADS,
                         status="200") == 3
    assert scraped.value("affix_upload_size_bytes_sum") == 600
    assert scraped.value("affix_http_requests_total", method="POST", route=UPLOADS,
                         status="400") is None
