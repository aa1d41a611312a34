"""Faults injected into a worker process by the tests that name them in INTERESTS_TEST_FAULT
(this folder on the worker's PYTHONPATH; Python imports `sitecustomize` at start-up).

- `recovery_resume_lost`: in every rebalance after the first, Faust's recovery resumes its
  active changelog partitions of the users table, and the resume is lost: the client holds
  their records and never hands them over, and recovery waits for them for ever. This is what
  a stalled recovery looks like from outside (Faust logging "No event received for active tp
  ... since recovery start"); the worker's recovery watch must resume them itself. Every
  persisted changelog offset is dropped as well, so each rebalance has records to recover.
"""

import os
import sys
from collections.abc import Iterable
from typing import Any

if os.environ.get("INTERESTS_TEST_FAULT") == "recovery_resume_lost":
    import inspect

    from faust.stores import rocksdb
    from faust.transport import consumer

    faust_resume = consumer.Consumer.resume_partitions

    def resume_partitions(self: Any, tps: Iterable[Any]) -> None:
        tps = set(tps)
        by_recovery = any(f.filename.endswith("faust/tables/recovery.py") for f in inspect.stack()[1:4])
        if by_recovery and self.app.consumer_generation_id >= 2:
            lost = {tp for tp in tps if tp.topic.endswith("-users-changelog")}
            if lost:
                print(f"fault: resume of {sorted(lost)} lost", file=sys.stderr, flush=True)
                tps -= lost
        return faust_resume(self, tps)

    def set_persisted_offset(self: Any, tp: Any, offset: int) -> None:
        pass

    consumer.Consumer.resume_partitions = resume_partitions  # type: ignore[method-assign]
    rocksdb.Store.set_persisted_offset = set_persisted_offset  # type: ignore[method-assign]
