"""The event catalog: every event type, its schema, topic, producer and consumers, read from events/catalog.yaml.

Example:
    >>> catalog = Catalog.load()
    >>> catalog["dataset.v1.arrived"].topic
    'aikube.dataset.v1.arrived'
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import jsonschema
import yaml

EVENTS_DIR_ENV = "AIKUBE_EVENTS_DIR"
SDK_PRODUCER = "aikube-sdk"  # data sources publish through aikube.sdk / `aikube publish`


class SchemaViolation(ValueError):
    """Event data does not match its JSON Schema; the message lists every violation with its path."""


class UnknownEventType(KeyError):
    """The event type is not in the catalog."""


@dataclass(frozen=True)
class EventSpec:
    """One catalog entry."""

    key: str
    type: str
    schema_file: Path
    topic: str
    producer: str
    consumers: tuple[str, ...]
    ordered: bool
    status: str
    schema: Mapping[str, Any] = field(repr=False)

    @property
    def dataschema(self) -> str:
        return str(self.schema["$id"])

    @cached_property
    def _validator(self) -> jsonschema.protocols.Validator:
        cls = jsonschema.validators.validator_for(self.schema)
        return cls(self.schema, format_checker=cls.FORMAT_CHECKER)

    def example_file(self, case: str = "minimal") -> Path:
        """events/examples/<resource>/v<N>/<Name>Data-<case>.json (cases: minimal, full)."""
        version_dir = self.schema_file.parent
        events_dir = version_dir.parents[2]
        return (
            events_dir
            / "examples"
            / version_dir.parent.name
            / version_dir.name
            / f"{self.schema_file.stem}-{case}.json"
        )

    def example(self, case: str = "minimal") -> dict[str, Any]:
        """An example payload of this type."""
        data: dict[str, Any] = json.loads(self.example_file(case).read_text())
        return data

    def validate(self, data: Any) -> None:
        """Check event data against this type's schema.

        Raises:
            SchemaViolation: naming each failing field and why.
        """
        errors = sorted(self._validator.iter_errors(data), key=lambda e: list(e.absolute_path))
        if errors:
            problems = "; ".join(f"{_path(e)}: {e.message}" for e in errors[:10])
            raise SchemaViolation(f"{self.key} data violates {self.schema_file.name}: {problems}")


def _path(error: jsonschema.ValidationError) -> str:
    return "/".join(str(p) for p in error.absolute_path) or "(root)"


def subscription_name(consumer: str, topic: str) -> str:
    """The subscription a consumer service reads a topic through."""
    return f"{consumer}.{topic}"


def dead_letter_topic(subscription: str) -> str:
    """The dead-letter topic (and its audit subscription) of one subscription."""
    return f"{subscription}.dead-letter"


class Catalog(Mapping[str, EventSpec]):
    """The catalog, keyed by `<resource>.v<N>.<action>`."""

    def __init__(self, events_dir: Path, prefix: str, specs: Mapping[str, EventSpec]) -> None:
        self.events_dir = events_dir
        self.prefix = prefix
        self._specs = dict(specs)
        self._by_type = {spec.type: spec for spec in specs.values()}

    @classmethod
    def load(cls, events_dir: Path | None = None) -> Catalog:
        """Read catalog.yaml and every schema it names.

        Args:
            events_dir: the events/ folder; defaults to $AIKUBE_EVENTS_DIR, else the repository's events/.
        """
        events_dir = events_dir or default_events_dir()
        raw = yaml.safe_load((events_dir / "catalog.yaml").read_text())
        specs = {}
        for key, entry in raw["events"].items():
            schema_file = events_dir / entry["schema"]
            specs[key] = EventSpec(
                key=key,
                type=entry["type"],
                schema_file=schema_file,
                topic=entry["topic"],
                producer=entry["producer"],
                consumers=tuple(entry.get("consumers") or ()),
                ordered=entry.get("ordered_by") == "subject",
                status=entry.get("status", "draft"),
                schema=json.loads(schema_file.read_text()),
            )
        return cls(events_dir, raw["prefix"], specs)

    def __getitem__(self, key: str) -> EventSpec:
        try:
            return self._specs[key]
        except KeyError:
            raise UnknownEventType(f"no event {key!r} in the catalog") from None

    def __iter__(self) -> Iterator[str]:
        return iter(self._specs)

    def __len__(self) -> int:
        return len(self._specs)

    def by_type(self, event_type: str) -> EventSpec:
        """The entry of a CloudEvents `type`.

        Raises:
            UnknownEventType: the type is not in the catalog.
        """
        try:
            return self._by_type[event_type]
        except KeyError:
            raise UnknownEventType(f"no event of type {event_type!r} in the catalog") from None

    def consumed_by(self, service: str) -> list[EventSpec]:
        """The entries a service subscribes to."""
        return [spec for spec in self._specs.values() if service in spec.consumers]

    def services(self) -> set[str]:
        """Every producer and consumer the catalog names."""
        return {spec.producer for spec in self._specs.values()} | {
            c for spec in self._specs.values() for c in spec.consumers
        }


def default_events_dir() -> Path:
    """$AIKUBE_EVENTS_DIR, else the `events/` folder of the checkout this package is installed from."""
    if env := os.environ.get(EVENTS_DIR_ENV):
        return Path(env)
    for parent in Path(__file__).resolve().parents:
        if (parent / "events" / "catalog.yaml").is_file():
            return parent / "events"
    raise FileNotFoundError(f"events/catalog.yaml not found: set {EVENTS_DIR_ENV} to the events folder")
