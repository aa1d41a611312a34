"""Route a record that cannot be processed to the dead-letter topic, with its reason."""

from __future__ import annotations

import logging
import time
from typing import Any

import faust

from streams.metrics import Metrics
from streams.records import Invalid, dead_letter

log = logging.getLogger(__name__)


def send_to_dlq(dlq: faust.TopicT, metrics: Metrics, event: Any, error: Invalid) -> None:
    """`event` is a faust Event; its message carries the original key and value bytes."""
    message = event.message
    metrics.dlq.labels(error.reason, message.topic).inc()
    log.warning(
        "dead letter %s[%s]@%s: %s", message.topic, message.partition, message.offset, error
    )
    dlq.send_soon(
        key=message.key,
        value=dead_letter(
            error.reason, error.detail, message.topic, message.partition, message.offset,
            message.key, message.value, int(time.time() * 1000),
        ),
    )
