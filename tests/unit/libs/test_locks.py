"""Keyed locks: one holder per key at a time, nothing kept once released."""

from __future__ import annotations

import threading
import time

from aikube.locks import KeyedLocks


def test_keyed_locks_serialise_one_key_and_forget_it_after() -> None:
    """Concurrent deliveries of one event run one at a time; a long-running service keeps no lock per event."""
    locks = KeyedLocks()
    inside: list[int] = []
    overlaps: list[int] = []

    def deliver() -> None:
        with locks.hold("same-event"):
            inside.append(1)
            if len(inside) > 1:
                overlaps.append(len(inside))
            time.sleep(0.01)
            inside.pop()

    threads = [threading.Thread(target=deliver) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for n in range(100):
        with locks.hold(f"event-{n}"):
            pass
    assert overlaps == []
    assert len(locks) == 0
