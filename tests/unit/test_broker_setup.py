"""The local Kafka broker's setup, without starting one."""

from __future__ import annotations

import base64

from streams.ops.broker import new_cluster_id


def test_a_cluster_id_never_starts_with_a_dash() -> None:
    """StorageTool takes the id on its command line, where "-..." reads as an option."""
    dash = b"\xf8" + bytes(15)  # its URL-safe base64 starts with "-"
    assert base64.urlsafe_b64encode(dash).decode().startswith("-")
    draws = iter([dash, dash, bytes(range(16))])
    cluster_id = new_cluster_id(lambda: next(draws))
    assert cluster_id == base64.urlsafe_b64encode(bytes(range(16))).rstrip(b"=").decode()
    assert len(cluster_id) == 22 and not cluster_id.startswith("-")
    assert not new_cluster_id().startswith("-")
