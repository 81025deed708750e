"""The socket relay's pure parts (shared/relay.py): routing keys and the relayed message."""

import json

import pytest

from shared.relay import decode, encode, relay_key


def test_a_key_is_16_hex_digits_whatever_the_ids():
    for workspace_id, local_id in (("default", "ann"), ("w" * 300, "a.b.c#*"), ("", ""), ("ворк", "агент")):
        key = relay_key(workspace_id, local_id)
        assert len(key) == 16 and all(c in "0123456789abcdef" for c in key), key


def test_the_key_is_stable_and_tells_the_pairs_apart():
    assert relay_key("default", "ann") == relay_key("default", "ann") == "49d1eaa8f2da350e"  # every process agrees
    assert relay_key("default", "ann") != relay_key("default", "bob")
    assert relay_key("default", "ann") != relay_key("other", "ann")
    assert relay_key("ab", "c") != relay_key("a", "bc")  # the ids are not simply run together
    assert relay_key("a.b", "c") != relay_key("a", "b.c")


def test_a_frame_goes_through_with_its_key_and_the_sender():
    message = encode("process-1", ("default", "ann"), {"type": "message", "text": "hi"})
    assert message.app_id == "process-1"
    assert message.delivery_mode.value == 1  # transient: a frame is worthless after a broker restart
    assert decode(message.body) == (("default", "ann"), {"type": "message", "text": "hi"})


@pytest.mark.parametrize("body", [
    b"not json", b"[1, 2]", b"null", b'{"frame": {}}', b'{"key": ["a"], "frame": {}}',
    b'{"key": ["a", 1], "frame": {}}', b'{"key": ["a", "b"], "frame": []}', b"\xff\xfe",
])
def test_anything_else_is_refused_with_a_value_error(body):
    with pytest.raises(ValueError, match=r"relayed frame|Expecting|codec|JSON"):
        decode(body)


def test_the_body_is_plain_json():
    assert json.loads(encode("p", ("w", "t"), {"type": "typing"}).body) == {"key": ["w", "t"], "frame": {"type": "typing"}}
