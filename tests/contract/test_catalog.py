"""The event catalog against everything it names: schemas, examples, producers, consumers and their handlers.

Like EVI `tests/test_pydantic_aliases.py` (STYLE.md §4): nothing in events/catalog.yaml may point at a file, folder or
handler that does not exist, and no service may handle an event the catalog does not route to it.
"""

from __future__ import annotations

import importlib
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from aikube.catalog import SDK_PRODUCER, Catalog, EventSpec, SchemaViolation

REPO = Path(__file__).resolve().parents[2]
SERVICES = REPO / "services"
SDK_MODULE = REPO / "libs" / "aikube" / "src" / "aikube" / "sdk.py"
KEYS = sorted(Catalog.load(REPO / "events"))
SERVICE_NAMES = sorted(p.name for p in SERVICES.iterdir() if (p / "pyproject.toml").is_file())
EXAMPLE_KINDS = ("minimal", "full")
KEY_PATTERN = re.compile(r"^(?P<resource>[a-z][A-Za-z0-9]*)\.(?P<version>v[1-9][0-9]*)\.(?P<action>[a-z][A-Za-z0-9]*)$")


def example_path(catalog: Catalog, spec: EventSpec, kind: str) -> Path:
    """events/examples/<resource>/v<N>/<Name>Data-<kind>.json, mirroring the schema's path."""
    relative = spec.schema_file.relative_to(catalog.events_dir / "schemas")
    return catalog.events_dir / "examples" / relative.with_name(f"{spec.schema_file.stem}-{kind}.json")


def load_example(catalog: Catalog, spec: EventSpec, kind: str) -> dict[str, Any]:
    return json.loads(example_path(catalog, spec, kind).read_text())


def handled_keys(service: str) -> set[str]:
    """The catalog keys a service's `handlers.router` registers."""
    module = importlib.import_module(f"{service.replace('-', '_')}.handlers")
    return set(module.router.handlers)


def untyped_properties(schema: dict[str, Any], path: str = "") -> Iterator[str]:
    """Paths of properties, at any depth, that have neither a `description` nor a `type`."""
    for name, prop in schema.get("properties", {}).items():
        if "description" not in prop and "type" not in prop:
            yield f"{path}/{name}"
        yield from untyped_properties(prop, f"{path}/{name}")
    for nested in ("items", "additionalProperties"):
        if isinstance(schema.get(nested), dict):
            yield from untyped_properties(schema[nested], f"{path}/{nested}")


@pytest.mark.parametrize("key", KEYS)
def test_key_is_resource_version_action(key: str) -> None:
    """Each key reads `<resource>.v<N>.<action>` with camelCase segments."""
    assert KEY_PATTERN.match(key), key


@pytest.mark.parametrize("key", KEYS)
def test_type_is_prefix_and_key(catalog: Catalog, key: str) -> None:
    """Each type is the catalog prefix, a dot, then the key."""
    assert catalog[key].type == f"{catalog.prefix}.{key}"


@pytest.mark.parametrize("key", KEYS)
def test_topic_is_aikube_and_key(catalog: Catalog, key: str) -> None:
    """Each topic is `aikube.` followed by the key."""
    assert catalog[key].topic == f"aikube.{key}"


@pytest.mark.parametrize("key", KEYS)
def test_schema_lives_in_resource_version_folder(catalog: Catalog, key: str) -> None:
    """Each schema is schemas/<resource>/v<N>/<Name>Data.json for the key's resource and version."""
    spec, parts = catalog[key], KEY_PATTERN.match(key)
    assert parts is not None
    relative = spec.schema_file.relative_to(catalog.events_dir / "schemas")
    assert relative.parts[:2] == (parts["resource"], parts["version"])
    assert len(relative.parts) == 3 and relative.name.endswith("Data.json"), relative


@pytest.mark.parametrize("key", KEYS)
def test_schema_id_is_schema_base_and_path(catalog: Catalog, key: str) -> None:
    """Each schema's $id, the events' dataschema, is the catalog's schema_base plus the schema's folder path."""
    raw = yaml.safe_load((catalog.events_dir / "catalog.yaml").read_text())
    spec = catalog[key]
    relative = spec.schema_file.relative_to(catalog.events_dir / "schemas").as_posix()
    assert spec.dataschema == raw["schema_base"] + relative


@pytest.mark.parametrize("key", KEYS)
def test_schema_lists_type_in_cloudevent_types(catalog: Catalog, key: str) -> None:
    """Each schema's `cloudeventTypes` names the catalog type that carries it."""
    spec = catalog[key]
    assert spec.type in spec.schema.get("cloudeventTypes", []), spec.schema_file


@pytest.mark.parametrize("key", KEYS)
def test_schema_allows_unknown_top_level_fields(catalog: Catalog, key: str) -> None:
    """No schema sets top-level additionalProperties false: consumers ignore fields they do not know."""
    assert catalog[key].schema.get("additionalProperties", True) is not False


@pytest.mark.parametrize("key", KEYS)
def test_every_property_has_description_or_type(catalog: Catalog, key: str) -> None:
    """Every property, at any depth, says what it is: a description, a type, or both."""
    assert list(untyped_properties(dict(catalog[key].schema))) == []


@pytest.mark.parametrize("kind", EXAMPLE_KINDS)
@pytest.mark.parametrize("key", KEYS)
def test_example_exists(catalog: Catalog, key: str, kind: str) -> None:
    """Each entry has a -minimal and a -full example beside its schema's path under examples/."""
    assert example_path(catalog, catalog[key], kind).is_file()


@pytest.mark.parametrize("kind", EXAMPLE_KINDS)
@pytest.mark.parametrize("key", KEYS)
def test_example_validates(catalog: Catalog, key: str, kind: str) -> None:
    """Each example is valid data of its type."""
    spec = catalog[key]
    spec.validate(load_example(catalog, spec, kind))


@pytest.mark.parametrize("key", KEYS)
def test_example_without_a_required_field_is_rejected(catalog: Catalog, key: str) -> None:
    """Removing any required field from the full example raises SchemaViolation naming that field."""
    spec = catalog[key]
    full = load_example(catalog, spec, "full")
    for name in spec.schema["required"]:
        mutated = {k: v for k, v in full.items() if k != name}
        with pytest.raises(SchemaViolation, match=re.escape(f"'{name}' is a required property")):
            spec.validate(mutated)


@pytest.mark.parametrize("key", KEYS)
def test_producer_exists(catalog: Catalog, key: str) -> None:
    """Each producer is a service folder or the SDK producer."""
    producer = catalog[key].producer
    assert producer == SDK_PRODUCER or producer in SERVICE_NAMES, producer


def test_sdk_producer_has_its_module() -> None:
    """The SDK producer `aikube-sdk` is aikube.sdk."""
    assert SDK_PRODUCER == "aikube-sdk"
    assert SDK_MODULE.is_file()


@pytest.mark.parametrize("key", KEYS)
def test_consumers_exist(catalog: Catalog, key: str) -> None:
    """Each consumer is a service folder."""
    assert set(catalog[key].consumers) <= set(SERVICE_NAMES)


@pytest.mark.parametrize("service", SERVICE_NAMES)
def test_service_handles_every_key_it_consumes(catalog: Catalog, service: str) -> None:
    """A service's router has a handler for each key the catalog routes to it."""
    consumed = {spec.key for spec in catalog.consumed_by(service)}
    assert consumed - handled_keys(service) == set()


@pytest.mark.parametrize("service", SERVICE_NAMES)
def test_service_handles_only_keys_it_consumes(catalog: Catalog, service: str) -> None:
    """A service's router has no handler for a key the catalog does not route to it."""
    consumed = {spec.key for spec in catalog.consumed_by(service)}
    assert handled_keys(service) - consumed == set()
