"""The metrics reference: every metric a scrape of ``/metrics`` shows, read from a scrape of a
throwaway app (so that the collectors :func:`~affix.app.metrics.create_metrics` adds are in it),
with the label names of :class:`~affix.app.metrics.Metrics`' metrics, which a scrape shows only
once a series exists."""
from typing import NamedTuple

from prometheus_client import CollectorRegistry
from prometheus_client.parser import text_string_to_metric_families

from affix.app.metrics import METRICS_PATH, Metrics

from affix_docs import throwaway
from affix_docs.markdown import code, table

# what prometheus_client adds to a histogram's samples, no label of affix's
_SAMPLE_LABELS = {"le"}
# the creation time prometheus_client publishes beside a counter or histogram, as a family
# of its own: no metric of affix's
_CREATED = "_created"
# the series names a counter's values go by, as a query writes them
_SUFFIX = {"counter": "_total"}


class Metric(NamedTuple):
    name: str
    type: str
    labels: tuple
    help: str


def _declared_labels() -> dict:
    """name → label names of each metric :class:`Metrics` declares. prometheus_client keeps a
    metric's label names in ``_labelnames`` (its own ``describe()`` leaves them out)."""
    labels = {}
    for metric in vars(Metrics(CollectorRegistry())).values():
        for family in getattr(metric, "describe", lambda: [])():
            labels[family.name] = tuple(metric._labelnames)
    return labels


def metrics() -> list:
    """Every metric of a scrape, in the scrape's order."""
    scrape = throwaway.get(METRICS_PATH, metrics=True).text
    declared = _declared_labels()
    families = list(text_string_to_metric_families(scrape))
    names = {family.name for family in families}
    found = []
    for family in families:
        if family.name.removesuffix(_CREATED) in names - {family.name}:
            continue
        seen = {name for sample in family.samples for name in sample.labels}
        labels = tuple(declared.get(family.name, ())) + tuple(
            sorted(seen - _SAMPLE_LABELS - set(declared.get(family.name, ()))))
        found.append(Metric(family.name + _SUFFIX.get(family.type, ""), family.type, labels,
                            family.documentation))
    return found


def reference() -> str:
    rows = [(code(metric.name), metric.type, ", ".join(code(name) for name in metric.labels),
             metric.help) for metric in metrics()]
    return table(("metric", "type", "labels", "meaning"), rows)
