"""The Google Cloud Pub/Sub protocol binding for CloudEvents (googleapis/google-cloudevents docs/spec/pubsub.md).

The `cloudevents` SDK ships HTTP, Kafka and AMQP bindings but none for Pub/Sub; this module is that binding, shaped
like `cloudevents.core.bindings.kafka`: a frozen message type and pure functions, so it is testable byte for byte.

Binary mode (the default): every CloudEvents attribute becomes a lower-case `ce-<name>` message attribute,
`datacontenttype` becomes `content-type`, and the body is the event data. Subscriptions can then filter on
`attributes.ce-type` without parsing bodies. Structured mode: `content-type: application/cloudevents+json` and the
whole event, in the CloudEvents JSON format, in the body. `encode` falls back to it when the attributes would break
Pub/Sub's limits.

Example:
    >>> from cloudevents.core.v1.event import CloudEvent
    >>> event = CloudEvent({"id": "1", "source": "/aikube/ingestor", "type": "dev.aikube.dataset.v1.ingested"},
    ...                    data={"rows": 3})
    >>> message = encode(event)
    >>> message.attributes["ce-type"], message.data
    ('dev.aikube.dataset.v1.ingested', b'{"rows": 3}')
    >>> from_pubsub(message.data, message.attributes).get_data()
    {'rows': 3}
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from functools import partial
from types import MappingProxyType
from typing import Any, Final

from cloudevents.core.exceptions import CloudEventValidationError
from cloudevents.core.formats.json import JSONFormat
from cloudevents.core.spec import SPECVERSION_V1_0
from cloudevents.core.v1.event import REQUIRED_ATTRIBUTES, CloudEvent
from dateutil.parser import isoparse

__all__ = [
    "MAX_ATTRIBUTES",
    "MAX_ATTRIBUTE_KEY_BYTES",
    "MAX_ATTRIBUTE_VALUE_BYTES",
    "MAX_MESSAGE_BYTES",
    "CodecError",
    "PubSubMessage",
    "attribute_limit_violation",
    "encode",
    "from_pubsub",
    "message_size",
    "to_binary",
    "to_structured",
]

CE_PREFIX: Final = "ce-"
CONTENT_TYPE: Final = "content-type"
STRUCTURED_PREFIX: Final = "application/cloudevents"

# Pub/Sub quotas (cloud.google.com/pubsub/quotas#resource_limits).
MAX_ATTRIBUTES: Final = 100
MAX_ATTRIBUTE_KEY_BYTES: Final = 256
MAX_ATTRIBUTE_VALUE_BYTES: Final = 1024
# python-pubsub rejects a PublishRequest above 10,000,000 bytes (publisher/_batch/thread.py). That request also holds
# the topic name (≤ ~300 bytes) and protobuf framing (a few bytes per field and attribute), hence the 2 KiB reserve.
MAX_MESSAGE_BYTES: Final = 10_000_000 - 2048

_FORMAT: Final = JSONFormat()
# application/json, text/json and any */*+json, with optional parameters such as charset.
_JSON_CONTENT_TYPE: Final = re.compile(r"^[^/;\s]+/([^/;\s]+\+)?json\s*(;.*)?$", re.IGNORECASE)


class CodecError(ValueError):
    """A message that is not a valid CloudEvent, or an event that cannot be sent; the text names the attribute."""


@dataclass(frozen=True)
class PubSubMessage:
    """The parts of a Pub/Sub message a CloudEvent maps to; attribute values are always `str`."""

    data: bytes
    attributes: Mapping[str, str]
    ordering_key: str = ""

    def __post_init__(self) -> None:
        # A read-only copy keeps the frozen message frozen even if the caller mutates the dict it passed.
        object.__setattr__(self, "attributes", MappingProxyType(dict(self.attributes)))


def to_binary(event: CloudEvent, *, ordering_key: str = "") -> PubSubMessage:
    """Map an event to a binary-mode message: `ce-<name>` attributes, `content-type`, data as the body.

    Args:
        event: the event; dict data is JSON-encoded, bytes data passes through unchanged.
        ordering_key: the Pub/Sub ordering key (usually the subject of ordered event types).

    Raises:
        CodecError: the data cannot be represented under its datacontenttype.
    """
    attributes: dict[str, str] = {}
    for name, value in event.get_attributes().items():
        if value is None:
            continue
        key = CONTENT_TYPE if name == "datacontenttype" else CE_PREFIX + name
        attributes[key] = _attribute_string(value)
    body = _encode_body(event.get_data(), event.get_datacontenttype())
    return PubSubMessage(body, attributes, ordering_key)


def to_structured(event: CloudEvent, *, ordering_key: str = "") -> PubSubMessage:
    """Map an event to a structured-mode message: the whole event as CloudEvents JSON in the body.

    Raises:
        CodecError: an attribute or the data is not JSON-serialisable.
    """
    try:
        body = _FORMAT.write(event)
    except (TypeError, ValueError) as exc:
        raise CodecError(f"event {event.get_id()} cannot be written as CloudEvents JSON: {exc}") from exc
    return PubSubMessage(body, {CONTENT_TYPE: _FORMAT.get_content_type()}, ordering_key)


def encode(event: CloudEvent, *, ordering_key: str = "") -> PubSubMessage:
    """Binary mode, or structured mode when binary attributes would break Pub/Sub's attribute limits.

    Raises:
        CodecError: the message would exceed Pub/Sub's size limit, or the event cannot be encoded.
    """
    message = to_binary(event, ordering_key=ordering_key)
    if attribute_limit_violation(message.attributes) is not None:
        message = to_structured(event, ordering_key=ordering_key)
    size = message_size(message)
    if size > MAX_MESSAGE_BYTES:
        raise CodecError(
            f"event {event.get_id()} encodes to {size} bytes; Pub/Sub accepts at most {MAX_MESSAGE_BYTES}: "
            "put large payloads in storage and send a reference"
        )
    return message


def from_pubsub(data: bytes, attributes: Mapping[str, str]) -> CloudEvent:
    """Decode a Pub/Sub message into a CloudEvent, detecting structured or binary mode.

    Structured mode is recognised by a content-type starting with `application/cloudevents`; anything else is
    binary mode. Attribute keys are matched case-insensitively (`Content-Type`, `CE-ID`), and `ce-datacontenttype`
    is accepted where `content-type` is absent.

    Raises:
        CodecError: a required attribute is missing, the specversion is not 1.0, the time is not RFC 3339, or the
            body does not match its content type; the message names the attribute.
    """
    lowered = {key.lower(): value for key, value in attributes.items()}
    content_type = lowered.get(CONTENT_TYPE) or lowered.get(CE_PREFIX + "datacontenttype")
    if content_type is not None and content_type.lower().startswith(STRUCTURED_PREFIX):
        return _from_structured(data, content_type)
    return _from_binary(data, lowered)


def attribute_limit_violation(attributes: Mapping[str, str]) -> str | None:
    """Which Pub/Sub attribute limit these attributes break, or None when they fit."""
    if len(attributes) > MAX_ATTRIBUTES:
        return f"{len(attributes)} attributes (Pub/Sub allows {MAX_ATTRIBUTES})"
    for key, value in attributes.items():
        if len(key.encode()) > MAX_ATTRIBUTE_KEY_BYTES:
            return f"attribute key {key[:40]!r}... is longer than {MAX_ATTRIBUTE_KEY_BYTES} bytes"
        if len(value.encode()) > MAX_ATTRIBUTE_VALUE_BYTES:
            return f"attribute {key!r} has a value longer than {MAX_ATTRIBUTE_VALUE_BYTES} bytes"
    return None


def message_size(message: PubSubMessage) -> int:
    """Bytes Pub/Sub counts for a message: data, attribute keys and values, ordering key."""
    attribute_bytes = sum(len(key.encode()) + len(value.encode()) for key, value in message.attributes.items())
    return len(message.data) + attribute_bytes + len(message.ordering_key.encode())


def _from_binary(body: bytes, lowered: Mapping[str, str]) -> CloudEvent:
    attributes: dict[str, Any] = {
        key[len(CE_PREFIX) :]: value for key, value in lowered.items() if key.startswith(CE_PREFIX)
    }
    if CONTENT_TYPE in lowered:  # the binding's own key wins over the ce-datacontenttype variant
        attributes["datacontenttype"] = lowered[CONTENT_TYPE]
    _check_required(attributes, CE_PREFIX)
    if "time" in attributes:
        attributes["time"] = _parse_time(attributes["time"], CE_PREFIX + "time")
    data = _decode_body(body, attributes.get("datacontenttype"))
    return _new_event(attributes, data, prefix=CE_PREFIX)


def _from_structured(body: bytes, content_type: str) -> CloudEvent:
    if not _is_json(content_type) or "batch" in content_type.lower():
        raise CodecError(f"content-type {content_type!r}: only application/cloudevents+json is supported")
    document = _parse_json(body, "structured body")
    if not isinstance(document, dict):
        raise CodecError("structured body: expected a JSON object holding the event")
    # JSONFormat.read raises bare ValueError/TypeError/AttributeError that do not say which attribute is wrong,
    # so the document is checked first; events are small (claim-check pattern), the second parse is cheap.
    _check_required(document, "")
    if "time" in document:
        _parse_time(document["time"], "time")
    try:
        event = _FORMAT.read(partial(_new_event, prefix=""), body)
    except binascii.Error as exc:
        raise CodecError(f"data_base64: not valid base64 ({exc})") from exc
    assert isinstance(event, CloudEvent)  # _new_event builds it
    return event


def _check_required(attributes: Mapping[str, Any], prefix: str) -> None:
    for name in REQUIRED_ATTRIBUTES:
        value = attributes.get(name)
        if value is None:
            raise CodecError(f"missing required attribute {prefix}{name}")
        if not isinstance(value, str) or not value:
            raise CodecError(f"attribute {prefix}{name} must be a non-empty string, got {value!r}")
    if attributes["specversion"] != SPECVERSION_V1_0:
        raise CodecError(
            f"attribute {prefix}specversion: unsupported version {attributes['specversion']!r} "
            f"(supported: {SPECVERSION_V1_0})"
        )


def _new_event(attributes: dict[str, Any], data: Any, *, prefix: str) -> CloudEvent:
    try:
        return CloudEvent(attributes, data)
    except CloudEventValidationError as exc:
        problems = "; ".join(f"{prefix}{name}: {error}" for name, errors in exc.errors.items() for error in errors)
        raise CodecError(f"invalid attribute {problems}") from exc


def _parse_time(value: Any, label: str) -> datetime:
    try:
        parsed = isoparse(value)
    except (ValueError, TypeError, OverflowError) as exc:
        raise CodecError(f"attribute {label}: not an RFC 3339 timestamp: {value!r}") from exc
    if parsed.tzinfo is None:  # RFC 3339 requires an offset; a naive time would be read in a guessed zone
        raise CodecError(f"attribute {label}: RFC 3339 timestamp without a UTC offset: {value!r}")
    return parsed


def _attribute_string(value: Any) -> str:
    """The canonical string form of an attribute value (CloudEvents spec, "Type System")."""
    if isinstance(value, datetime):
        return _rfc3339(value)
    if isinstance(value, bool):  # before int: bool is an int, and the spec spells it lower-case
        return "true" if value else "false"
    if isinstance(value, bytes):
        return base64.b64encode(value).decode("ascii")
    return str(value)


def _rfc3339(moment: datetime) -> str:
    text = moment.isoformat()
    return text.removesuffix("+00:00") + "Z" if text.endswith("+00:00") else text


def _is_json(content_type: str | None) -> bool:
    # An absent datacontenttype means application/json (CloudEvents JSON format, "datacontenttype").
    return content_type is None or bool(_JSON_CONTENT_TYPE.match(content_type))


def _encode_body(data: Any, content_type: str | None) -> bytes:
    if data is None:
        return b""
    if isinstance(data, (bytes, bytearray)):
        return bytes(data)
    if _is_json(content_type):
        # Any value, a str included, is sent as JSON text so that the receiver can always parse the body and gets
        # back what was sent, as the structured JSON format does with its "data" member.
        try:
            return json.dumps(data, default=_json_default).encode()
        except (TypeError, ValueError) as exc:
            raise CodecError(f"data: not JSON-serialisable under content-type {content_type!r}: {exc}") from exc
    if isinstance(data, str):
        return data.encode()
    raise CodecError(
        f"data: a {type(data).__name__} cannot be sent as content-type {content_type!r}; "
        "use a JSON content type, or bytes"
    )


def _json_default(value: Any) -> str:
    if isinstance(value, datetime):
        return _rfc3339(value)
    raise TypeError(f"{type(value).__name__} is not JSON-serialisable")


def _decode_body(body: bytes, content_type: str | None) -> Any:
    if not body:
        return None
    if _is_json(content_type):
        return _parse_json(body, f"body (content-type {content_type or 'absent, JSON assumed'})")
    if content_type is not None and content_type.lower().startswith("text/"):
        try:
            return body.decode()
        except UnicodeDecodeError as exc:
            raise CodecError(f"body: not UTF-8 text although content-type is {content_type!r}") from exc
    return body


def _parse_json(body: bytes, label: str) -> Any:
    try:
        return json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise CodecError(f"{label}: invalid JSON: {exc}") from exc
