"""The CloudEvents ⇄ Pub/Sub binding: wire format byte for byte, round trips, tolerant readers, errors, limits."""

from __future__ import annotations

import json
from datetime import datetime, timezone
from typing import Any

import pytest
from cloudevents.core.v1.event import CloudEvent

from aikube.codec import (
    MAX_ATTRIBUTE_KEY_BYTES,
    MAX_ATTRIBUTE_VALUE_BYTES,
    MAX_ATTRIBUTES,
    MAX_MESSAGE_BYTES,
    CodecError,
    PubSubMessage,
    attribute_limit_violation,
    encode,
    from_pubsub,
    message_size,
    to_binary,
    to_structured,
)

TIME = datetime(2026, 1, 2, 3, 4, 5, 678000, tzinfo=timezone.utc)
TRACEPARENT = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-03"
DATA = {"dataset": "bikes", "rows": 3}


def make_event(data: Any = DATA, **attributes: Any) -> CloudEvent:
    """An event as the services emit it, with trace extensions; keyword arguments override or add attributes."""
    base: dict[str, Any] = {
        "id": "evt-1",
        "source": "/aikube/ingestor",
        "type": "dev.aikube.dataset.v1.ingested",
        "specversion": "1.0",
        "subject": "dataset/bikes",
        "time": TIME,
        "datacontenttype": "application/json",
        "traceparent": TRACEPARENT,
        "tracestate": "aikube=1",
    }
    base.update(attributes)
    return CloudEvent({key: value for key, value in base.items() if value is not None}, data)


def wire_attributes(**overrides: str | None) -> dict[str, str]:
    """Binary-mode attributes of a minimal valid message; None removes a key."""
    attributes = {
        "ce-id": "evt-1",
        "ce-source": "/aikube/ingestor",
        "ce-type": "dev.aikube.dataset.v1.ingested",
        "ce-specversion": "1.0",
        "content-type": "application/json",
    }
    attributes.update(overrides)  # type: ignore[arg-type]
    return {key: value for key, value in attributes.items() if value is not None}


def assert_same_event(decoded: CloudEvent, original: CloudEvent) -> None:
    assert decoded.get_attributes() == original.get_attributes()
    assert decoded.get_data() == original.get_data()


# --- wire format ------------------------------------------------------------------------------------------------


def test_binary_mode_maps_attributes_to_ce_prefixed_strings() -> None:
    """Binary mode: lower-case ce-<name> attributes, content-type from datacontenttype, RFC 3339 time."""
    message = to_binary(make_event())
    assert dict(message.attributes) == {
        "ce-id": "evt-1",
        "ce-source": "/aikube/ingestor",
        "ce-type": "dev.aikube.dataset.v1.ingested",
        "ce-specversion": "1.0",
        "ce-subject": "dataset/bikes",
        "ce-time": "2026-01-02T03:04:05.678000Z",
        "content-type": "application/json",
        "ce-traceparent": TRACEPARENT,
        "ce-tracestate": "aikube=1",
    }


def test_binary_mode_body_is_the_json_data() -> None:
    """Binary mode: the body is the JSON-encoded data and nothing else."""
    assert to_binary(make_event()).data == b'{"dataset": "bikes", "rows": 3}'


def test_binary_mode_writes_extension_values_in_canonical_string_form() -> None:
    """Non-string extension values become their CloudEvents canonical strings (Pub/Sub accepts only str)."""
    message = to_binary(make_event(attempt=2, replay=True, checksum=b"\x00\xff"))
    assert (message.attributes["ce-attempt"], message.attributes["ce-replay"]) == ("2", "true")
    assert message.attributes["ce-checksum"] == "AP8="
    assert all(isinstance(value, str) for value in message.attributes.values())


def test_binary_mode_without_datacontenttype_has_no_content_type() -> None:
    """An event without datacontenttype gets no content-type attribute, and its dict data is still JSON."""
    message = to_binary(make_event(datacontenttype=None))
    assert "content-type" not in message.attributes
    assert json.loads(message.data) == DATA


def test_binary_mode_passes_bytes_data_through() -> None:
    """Bytes data is the body unchanged."""
    payload = bytes(range(256))
    message = to_binary(make_event(payload, datacontenttype="application/octet-stream"))
    assert message.data == payload


def test_structured_mode_puts_the_whole_event_in_the_body() -> None:
    """Structured mode: application/cloudevents+json and the event in the CloudEvents JSON format."""
    message = to_structured(make_event(tracestate=None))
    assert dict(message.attributes) == {"content-type": "application/cloudevents+json"}
    assert message.data == (
        b'{"id": "evt-1", "source": "/aikube/ingestor", "type": "dev.aikube.dataset.v1.ingested", '
        b'"specversion": "1.0", "subject": "dataset/bikes", "time": "2026-01-02T03:04:05.678000Z", '
        b'"datacontenttype": "application/json", "traceparent": "' + TRACEPARENT.encode() + b'", '
        b'"data": {"dataset": "bikes", "rows": 3}}'
    )


@pytest.mark.parametrize("mapping", [to_binary, to_structured, encode])
def test_ordering_key_is_carried(mapping: Any) -> None:
    """Every mapping carries the ordering key it is given."""
    assert mapping(make_event(), ordering_key="dataset/bikes").ordering_key == "dataset/bikes"


def test_message_attributes_are_read_only() -> None:
    """A PubSubMessage is frozen, its attributes included."""
    source = {"ce-id": "1"}
    message = PubSubMessage(b"", source)
    source["ce-id"] = "changed"
    with pytest.raises(TypeError):
        message.attributes["ce-id"] = "2"  # type: ignore[index]
    assert message.attributes["ce-id"] == "1"


def test_dict_data_under_a_non_json_content_type_is_refused() -> None:
    """Dict data cannot be sent as text/csv: the error names the data and the content type."""
    with pytest.raises(CodecError, match=r"data: .*text/csv"):
        to_binary(make_event(datacontenttype="text/csv"))


# --- round trips --------------------------------------------------------------------------------------------------


def test_binary_round_trip_keeps_attributes_extensions_and_data() -> None:
    """Binary encode then decode gives back the same event, traceparent and tracestate included."""
    event = make_event()
    message = to_binary(event)
    assert_same_event(from_pubsub(message.data, message.attributes), event)


def test_structured_round_trip_keeps_attributes_extensions_and_data() -> None:
    """Structured encode then decode gives back the same event, traceparent and tracestate included."""
    event = make_event()
    message = to_structured(event)
    assert_same_event(from_pubsub(message.data, message.attributes), event)


@pytest.mark.parametrize("mapping", [to_binary, to_structured])
def test_round_trip_of_bytes_data(mapping: Any) -> None:
    """Bytes data comes back as the same bytes in both modes."""
    event = make_event(b"\x89PNG\x00\x01", datacontenttype="image/png")
    message = mapping(event)
    assert_same_event(from_pubsub(message.data, message.attributes), event)


@pytest.mark.parametrize("mapping", [to_binary, to_structured])
def test_round_trip_of_text_data(mapping: Any) -> None:
    """Text data under a text/* content type comes back as the same str in both modes."""
    event = make_event("date,rides\n2026-01-01,3\n", datacontenttype="text/csv")
    message = mapping(event)
    assert_same_event(from_pubsub(message.data, message.attributes), event)


def test_binary_round_trip_of_a_string_under_json_content_type() -> None:
    """A str under a JSON content type travels as a JSON string, so the receiver can parse it back."""
    event = make_event("plain words")
    message = to_binary(event)
    assert message.data == b'"plain words"'
    assert_same_event(from_pubsub(message.data, message.attributes), event)


def test_binary_round_trip_of_an_event_without_data() -> None:
    """No data means an empty body, decoded back to no data."""
    event = make_event(None)
    message = to_binary(event)
    assert message.data == b""
    assert from_pubsub(message.data, message.attributes).get_data() is None


# --- tolerant readers ---------------------------------------------------------------------------------------------


def test_reader_accepts_capitalised_content_type() -> None:
    """`Content-Type` is read like `content-type`."""
    attributes = wire_attributes(**{"content-type": None, "Content-Type": "application/json"})
    event = from_pubsub(b'{"rows": 3}', attributes)
    assert (event.get_datacontenttype(), event.get_data()) == ("application/json", {"rows": 3})


def test_reader_accepts_ce_datacontenttype() -> None:
    """`ce-datacontenttype` stands in for a missing content-type."""
    attributes = wire_attributes(**{"content-type": None, "ce-datacontenttype": "application/json"})
    event = from_pubsub(b'{"rows": 3}', attributes)
    assert (event.get_datacontenttype(), event.get_data()) == ("application/json", {"rows": 3})


def test_reader_prefers_content_type_over_ce_datacontenttype() -> None:
    """When both are present, the binding's own content-type wins."""
    attributes = wire_attributes(**{"ce-datacontenttype": "text/plain"})
    assert from_pubsub(b'{"rows": 3}', attributes).get_data() == {"rows": 3}


def test_reader_accepts_upper_case_ce_keys() -> None:
    """`CE-ID`, `CE-TYPE`, ... are read like their lower-case forms."""
    attributes = {key.upper(): value for key, value in wire_attributes(**{"ce-traceparent": TRACEPARENT}).items()}
    event = from_pubsub(b'{"rows": 3}', attributes)
    assert (event.get_id(), event.get_type()) == ("evt-1", "dev.aikube.dataset.v1.ingested")
    assert event.get_extension("traceparent") == TRACEPARENT


def test_reader_detects_structured_mode_by_content_type_prefix_with_parameters() -> None:
    """`Content-Type: application/cloudevents+json; charset=utf-8` is structured mode."""
    message = to_structured(make_event())
    attributes = {"Content-Type": "application/cloudevents+json; charset=utf-8"}
    assert_same_event(from_pubsub(message.data, attributes), make_event())


@pytest.mark.parametrize("content_type", [None, "application/json; charset=utf-8", "application/vnd.aikube+json"])
def test_reader_decodes_json_content_types_into_a_dict(content_type: str | None) -> None:
    """Absent content-type, application/json with parameters and */*+json all decode the body into a dict."""
    event = from_pubsub(b'{"rows": 3}', wire_attributes(**{"content-type": content_type}))
    assert event.get_data() == {"rows": 3}


def test_reader_ignores_non_cloudevents_attributes() -> None:
    """Attributes the binding does not own (e.g. added by a dead-letter policy) are not turned into extensions."""
    attributes = wire_attributes(CloudPubSubDeadLetterSourceDeliveryCount="3")
    assert "CloudPubSubDeadLetterSourceDeliveryCount".lower() not in from_pubsub(b"{}", attributes).get_attributes()


# --- errors -------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("missing", ["ce-id", "ce-source", "ce-type", "ce-specversion"])
def test_missing_required_binary_attribute_is_named(missing: str) -> None:
    """A message without a required ce- attribute fails with an error naming it."""
    with pytest.raises(CodecError, match=f"missing required attribute {missing}$"):
        from_pubsub(b"{}", wire_attributes(**{missing: None}))


def test_empty_required_attribute_is_named() -> None:
    """An empty ce-source is as bad as a missing one."""
    with pytest.raises(CodecError, match="ce-source must be a non-empty string"):
        from_pubsub(b"{}", wire_attributes(**{"ce-source": ""}))


def test_missing_required_structured_attribute_is_named() -> None:
    """A structured event without `type` fails with an error naming it."""
    body = json.dumps({"id": "1", "source": "/x", "specversion": "1.0"}).encode()
    with pytest.raises(CodecError, match="missing required attribute type$"):
        from_pubsub(body, {"content-type": "application/cloudevents+json"})


@pytest.mark.parametrize("version", ["0.3", "2.0"])
def test_unsupported_specversion_is_refused(version: str) -> None:
    """Only CloudEvents 1.0 is accepted; the error names ce-specversion and the version seen."""
    with pytest.raises(CodecError, match=f"ce-specversion: unsupported version '{version}'"):
        from_pubsub(b"{}", wire_attributes(**{"ce-specversion": version}))


def test_invalid_json_body_is_refused() -> None:
    """A body that is not JSON under a JSON content type fails with an error naming the body."""
    with pytest.raises(CodecError, match=r"^body \(content-type application/json\): invalid JSON"):
        from_pubsub(b'{"rows": 3', wire_attributes())


def test_non_utf8_json_body_is_refused() -> None:
    """Bytes that are not text under a JSON content type are a CodecError, not a UnicodeDecodeError."""
    with pytest.raises(CodecError, match="invalid JSON"):
        from_pubsub(b"\xff\xfe\xfa", wire_attributes())


@pytest.mark.parametrize("time", ["yesterday", "2026-13-01T00:00:00Z", "2026-01-02T03:04:05"])
def test_invalid_binary_time_is_named(time: str) -> None:
    """ce-time must be RFC 3339 with an offset; the error names ce-time."""
    with pytest.raises(CodecError, match="attribute ce-time: "):
        from_pubsub(b"{}", wire_attributes(**{"ce-time": time}))


def test_invalid_structured_time_is_named() -> None:
    """A structured event with an unreadable time fails with an error naming time."""
    body = json.dumps({"id": "1", "source": "/x", "type": "t", "specversion": "1.0", "time": 1700000000}).encode()
    with pytest.raises(CodecError, match="attribute time: not an RFC 3339 timestamp"):
        from_pubsub(body, {"content-type": "application/cloudevents+json"})


@pytest.mark.parametrize("body", [b"not json", b'["a", "list"]'])
def test_structured_body_must_be_a_json_object(body: bytes) -> None:
    """A structured message whose body is not a JSON object fails with an error naming the body."""
    with pytest.raises(CodecError, match="structured body"):
        from_pubsub(body, {"content-type": "application/cloudevents+json"})


def test_structured_batch_mode_is_refused() -> None:
    """Batched structured mode is not part of the Pub/Sub binding; the error names the content-type."""
    with pytest.raises(CodecError, match="content-type 'application/cloudevents-batch\\+json'"):
        from_pubsub(b"[]", {"content-type": "application/cloudevents-batch+json"})


def test_invalid_extension_name_is_named() -> None:
    """An attribute name the CloudEvents spec forbids fails with an error naming it."""
    with pytest.raises(CodecError, match="ce-bad_name"):
        from_pubsub(b"{}", wire_attributes(**{"ce-bad_name": "x"}))


# --- Pub/Sub limits -----------------------------------------------------------------------------------------------


def test_encode_uses_binary_mode_when_attributes_fit() -> None:
    """encode is binary mode for a normal event."""
    assert encode(make_event()) == to_binary(make_event())


def test_encode_falls_back_to_structured_for_a_long_attribute_value() -> None:
    """A subject longer than Pub/Sub's attribute value limit sends the event structured, and it decodes back."""
    event = make_event(subject="dataset/" + "x" * MAX_ATTRIBUTE_VALUE_BYTES)
    message = encode(event)
    assert message.attributes == {"content-type": "application/cloudevents+json"}
    assert_same_event(from_pubsub(message.data, message.attributes), event)


def test_encode_counts_attribute_values_in_bytes_not_characters() -> None:
    """A value of few characters but more than 1024 UTF-8 bytes still triggers the fallback."""
    subject = "é" * (MAX_ATTRIBUTE_VALUE_BYTES // 2 + 1)  # 513 characters, 1026 bytes
    assert encode(make_event(subject=subject)).attributes == {"content-type": "application/cloudevents+json"}


def test_encode_falls_back_to_structured_for_too_many_attributes() -> None:
    """More than 100 attributes sends the event structured."""
    extensions = {f"ext{index}": "v" for index in range(MAX_ATTRIBUTES)}
    event = make_event(**extensions)
    assert len(to_binary(event).attributes) > MAX_ATTRIBUTES
    assert_same_event(from_pubsub(encode(event).data, encode(event).attributes), event)


def test_encode_falls_back_to_structured_for_a_long_attribute_key() -> None:
    """An extension name beyond Pub/Sub's 256-byte key limit sends the event structured."""
    event = make_event(**{"x" * MAX_ATTRIBUTE_KEY_BYTES: "v"})
    assert encode(event).attributes == {"content-type": "application/cloudevents+json"}


def test_encode_refuses_a_message_over_the_size_limit() -> None:
    """An event whose message exceeds Pub/Sub's 10 MB limit fails with a CodecError naming the size."""
    event = make_event(b"\x00" * (MAX_MESSAGE_BYTES + 1), datacontenttype="application/octet-stream")
    with pytest.raises(CodecError, match=f"Pub/Sub accepts at most {MAX_MESSAGE_BYTES}"):
        encode(event)


def test_encode_accepts_a_message_just_under_the_size_limit() -> None:
    """A message at the size limit is accepted."""
    small = to_binary(make_event(b"", datacontenttype="application/octet-stream"))
    room = MAX_MESSAGE_BYTES - message_size(small)
    event = make_event(b"\x00" * room, datacontenttype="application/octet-stream")
    assert message_size(encode(event)) == MAX_MESSAGE_BYTES


def test_message_size_counts_data_attributes_and_ordering_key() -> None:
    """message_size adds the body, every attribute key and value in UTF-8 bytes, and the ordering key."""
    message = PubSubMessage(b"12345", {"ce-id": "é"}, ordering_key="key")
    assert message_size(message) == 5 + len("ce-id") + 2 + 3


def test_attribute_limit_violation_names_the_offending_attribute() -> None:
    """Attributes that fit give None; an oversized value is reported with its key."""
    assert attribute_limit_violation(wire_attributes()) is None
    too_long = wire_attributes(**{"ce-subject": "x" * (MAX_ATTRIBUTE_VALUE_BYTES + 1)})
    assert attribute_limit_violation(too_long) == "attribute 'ce-subject' has a value longer than 1024 bytes"
