"""The garbage collector's settings for a long-running service process.

Every message allocates objects that live until its batch is stored: the paho message, the
`Inbound`, the validated model, the row. CPython's collector runs a young collection every 700
allocations, and an old one walks every tracked object the process holds, the modules, the ORM's
mappers and the validators included. In the ingest benchmark that was about 5 µs of CPU per
message, 5 % of the service's (docs/BENCHMARKS.md).

After start-up, what was loaded lives as long as the process: it is moved out of the collector's
generations (`gc.freeze`), and young collections run every 10,000 allocations. Reference cycles
are still collected; only less often.
"""

from __future__ import annotations

import gc
from typing import Final

YOUNG_THRESHOLD: Final = 10_000


def settle_after_start_up() -> None:
    """Collect once, keep what start-up loaded out of later collections, and collect the young
    generation less often. Called once a process has built its long-lived objects."""
    gc.collect()
    gc.freeze()
    _, middle, old = gc.get_threshold()
    gc.set_threshold(YOUNG_THRESHOLD, middle, old)
