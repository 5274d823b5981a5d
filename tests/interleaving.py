"""Another writer getting in between a read and a write, deterministically, for any ObjectStore."""

from __future__ import annotations

from collections.abc import Callable

from aikube.storage import ObjectStore, Versioned


def after_next_read(store: ObjectStore, key: str, meanwhile: Callable[[], None]) -> None:
    """Run `meanwhile` once, right after the store's next versioned read of `key` returned."""
    read = store.get_versioned

    def read_then_interleave(name: str) -> Versioned:
        result = read(name)
        if name == key and vars(store).pop("get_versioned", None) is not None:  # once: back to the class's method
            meanwhile()
        return result

    store.get_versioned = read_then_interleave  # type: ignore[method-assign]
