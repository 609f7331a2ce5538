"""A throwaway affix, for the references that are read from a running app: its OpenAPI
document and its metrics. It runs in this process, on a data folder that is removed after, with
every optional part on (virus scanning, whose metrics exist only then; no clamd is reached)."""
import contextlib
import tempfile
from collections.abc import Iterator

import falcon.testing

from affix import Settings, compose, create_app
from affix.plugins.clamav import ScanOptions

# addresses nothing listens on or is asked for: the references need scanning and the metrics
# on, never a scan or a listener (the metrics app is called in this process)
UNREACHED_CLAMD = "127.0.0.1:9"
UNBOUND_METRICS = "127.0.0.1:9"


@contextlib.contextmanager
def services() -> Iterator:
    with tempfile.TemporaryDirectory(prefix="affix-docs-") as data_dir:
        settings = Settings.for_data_dir(
            data_dir, scan=ScanOptions(mode="stream", clamd=UNREACHED_CLAMD),
            metrics_bind=UNBOUND_METRICS)
        yield compose(settings)


def get(path: str, *, metrics=False) -> falcon.testing.Result:
    """The throwaway app's answer to ``GET path`` (of its metrics listener with ``metrics``)."""
    with services() as built:
        app = built.metrics_app if metrics else create_app(services=built)
        return falcon.testing.TestClient(app).simulate_get(path)
