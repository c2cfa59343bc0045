"""Reading Ray's Prometheus endpoint (where Serve, the router and vLLM's engines export their metrics)."""

from __future__ import annotations

import urllib.request

from prometheus_client.parser import text_string_to_metric_families


def metrics_text() -> str:
    """The metrics page of this node; the caller must be connected to the cluster (``ray.init(address=...)``)."""
    import ray

    port = ray.nodes()[0]["MetricsExportPort"]
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as f:
        return f.read().decode()


def counter_total(text: str, name: str, **labels: str) -> float:
    """Sum of the samples of counter ``name`` (with or without ``_total``) whose labels include ``labels``."""
    base = name.removesuffix("_total")
    total = 0.0
    for family in text_string_to_metric_families(text):
        if family.name != base:
            continue
        for sample in family.samples:
            if sample.name.endswith("_total") and all(sample.labels.get(k) == v for k, v in labels.items()):
                total += sample.value
    return total
