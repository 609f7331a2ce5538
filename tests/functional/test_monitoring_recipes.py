"""The Prometheus files of deploy/prometheus/, which the operating guide includes: every metric
their rules name is one an app with metrics and scanning on exports (a renamed metric would
leave an alert that never fires), and the scrape configuration loads the rules file beside it."""
import dataclasses
import re

import falcon.testing
import pytest
import yaml

from affix import create_app
from affix.plugins.clamav import ScanOptions
from support.processes import REPO_ROOT
from support.scrape import metrics_listener, scrape_in_process

RECIPES = REPO_ROOT / "deploy" / "prometheus"
# the series Prometheus makes of one metric family: a counter's _total, a histogram's parts
SERIES_SUFFIXES = ("", "_total", "_bucket", "_sum", "_count", "_created")


def rules():
    return [rule for group in yaml.safe_load((RECIPES / "rules.yml").read_text())["groups"]
            for rule in group["rules"]]


def test_the_scrape_configuration_loads_the_rules_beside_it():
    configuration = yaml.safe_load((RECIPES / "prometheus.yml").read_text())

    assert configuration["rule_files"] == ["rules.yml"]
    assert [job["job_name"] for job in configuration["scrape_configs"]] == ["affix"]


@pytest.mark.sqlite_only("which metrics an app exports does not depend on its database")
def test_every_metric_the_alert_rules_name_is_exported(settings, plugin_manager):
    with metrics_listener() as listener:
        port = listener.getsockname()[1]
        observed = dataclasses.replace(settings, metrics_bind=f"127.0.0.1:{port}",
                                       scan=ScanOptions(mode="after", clamd="127.0.0.1:1"))
        client = falcon.testing.TestClient(create_app(observed, plugin_manager=plugin_manager))
        families = {name for name, _ in scrape_in_process(client, listener).samples}
        text = client.simulate_get("/metrics", extras={"gunicorn.socket": listener}).text
    families |= set(re.findall(r"^# TYPE (\w+) ", text, re.MULTILINE))
    exported = {family + suffix for family in families for suffix in SERIES_SUFFIXES}

    named = {name for rule in rules() for name in re.findall(r"\baffix_\w+", rule["expr"])}

    assert named == {
        "affix_backend_errors_total", "affix_attachments_awaiting_cleanup",
        "affix_upload_inspections_total", "affix_attachments_quarantined",
        "affix_webhook_deliveries_failing"}
    assert named <= exported, named - exported
    assert [rule["alert"] for rule in rules()] == [
        "AffixBackendFailing", "AffixCleanupNotRunning", "AffixScannerFailing",
        "AffixMalwareFound", "AffixWebhooksFailing"]
