"""Counting the events of a cluster's life in its memory (api/counters.py says why there)."""

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from api.counters import counter_key
    from api.messages import ClusterMemory


def count(memory: ClusterMemory, name: str, amount: int = 1, **labels: str) -> None:
    """Add `amount` to the cluster's counter `name` with `labels`."""
    if amount > 0:
        key = counter_key(name, labels)
        memory.counters[key] = memory.counters.get(key, 0) + amount
