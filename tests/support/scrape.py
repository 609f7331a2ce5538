"""affix's metrics as Prometheus reads them: scraped from the metrics listener (a real server's,
or a falcon.testing app's) and parsed by prometheus_client's own parser."""
import contextlib
import socket

import requests
from prometheus_client.parser import text_string_to_metric_families

from .net import HOST, REQUEST_TIMEOUT


class Scrape:
    """One scrape's samples, looked up by name and labels."""

    def __init__(self, text):
        self.samples = {
            (sample.name, frozenset(sample.labels.items())): sample.value
            for family in text_string_to_metric_families(text) for sample in family.samples
        }

    def value(self, name, **labels):
        """The sample's value; None when the scrape has no such sample."""
        return self.samples.get((name, frozenset(labels.items())))

    def label_values(self, label) -> set:
        return {value for _, labels in self.samples for key, value in labels if key == label}


@contextlib.contextmanager
def metrics_listener():
    """A real socket on a free loopback port, standing where gunicorn's listener would: a
    falcon.testing request that names it as ``gunicorn.socket`` came in on that port."""
    with socket.socket() as listener:
        listener.bind((HOST, 0))
        yield listener


def scrape_in_process(client, listener) -> Scrape:
    response = client.simulate_get("/metrics", extras={"gunicorn.socket": listener})
    assert response.status_code == 200, response.text
    return Scrape(response.text)


def scrape(port) -> Scrape:
    """Scrape a server's metrics listener, on a new connection (any worker may answer)."""
    response = requests.get(f"http://{HOST}:{port}/metrics", timeout=REQUEST_TIMEOUT,
                            headers={"Connection": "close"})
    assert response.status_code == 200, response.text
    return Scrape(response.text)
