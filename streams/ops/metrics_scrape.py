"""Read a worker's /metrics endpoint (for the demo's summary and the tests)."""

from __future__ import annotations

import urllib.request
from collections import defaultdict

from prometheus_client.parser import text_string_to_metric_families

Samples = dict[str, dict[tuple[tuple[str, str], ...], float]]  # sample name -> label pairs -> value


def scrape(url: str, timeout_s: float = 5.0) -> Samples:
    """-> {sample name: {sorted label pairs: value}}."""
    with urllib.request.urlopen(url, timeout=timeout_s) as response:
        text = response.read().decode("utf-8")
    samples: dict[str, dict[tuple[tuple[str, str], ...], float]] = defaultdict(dict)
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples[sample.name][tuple(sorted(sample.labels.items()))] = sample.value
    return samples


def total(samples: Samples, name: str, **labels: str) -> float:
    """Sum of a sample over every label set that matches `labels`."""
    return sum(
        value for key, value in samples.get(name, {}).items()
        if all(dict(key).get(k) == v for k, v in labels.items())
    )
