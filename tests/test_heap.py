"""The collector's settings after start-up (kneeguard.app.heap), in a fresh interpreter."""

from __future__ import annotations

import json
import subprocess
import sys

PROBE = """
import gc, json, weakref
import kneeguard.app.service  # what a service process loads before it settles
from kneeguard.app.heap import settle_after_start_up

before = gc.get_freeze_count()
settle_after_start_up()
frozen = gc.get_freeze_count()

class Node:
    pass

# A cycle made after start-up is still garbage the collector finds.
a, b = Node(), Node()
a.other, b.other = b, a
gone = weakref.ref(a)
del a, b
gc.collect(0)
print(json.dumps({
    "before": before, "frozen": frozen, "threshold": gc.get_threshold(),
    "cycle_collected": gone() is None,
}))
"""


def test_start_up_objects_are_frozen_and_young_collections_are_rarer() -> None:
    result = subprocess.run(
        [sys.executable, "-c", PROBE], capture_output=True, text=True, timeout=60, check=True
    )
    report = json.loads(result.stdout)
    assert report["before"] == 0
    # The service's modules, validators and ORM mappers: far more than a bare interpreter's.
    assert report["frozen"] > 50_000
    assert report["threshold"][0] == 10_000
    assert report["cycle_collected"]
