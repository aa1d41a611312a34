"""Every table, in flow order."""

from __future__ import annotations

from dataclasses import dataclass

import faust

from streams.settings import Settings


@dataclass(frozen=True)
class Tables:
    users: faust.types.TableT  # user id (bytes) -> UserState.to_bytes(); changelogged


def declare_tables(app: faust.App, settings: Settings) -> Tables:
    users = app.Table(
        "users",
        default=None,
        key_type=bytes,  # bytes <-> the "raw" codec: no JSON, no pickle
        value_type=bytes,
        partitions=settings.partitions,
        help="Per-user interest state, co-partitioned with the events topic.",
    )
    return Tables(users=users)
