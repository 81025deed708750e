"""Canned responses, pure: placeholders filled for a conversation, fallbacks, and unknown ones refused."""

import pytest
from pydantic import ValidationError

from services.agents.canned import CannedIn, placeholder_values, render

CONVERSATION = {"_id": "c1", "channel": "telegram", "contact": {"name": "Dana Ivanova", "email": "d@x.example"}}
AGENT = {"agent_id": "ann", "name": "Ann Lee"}


def test_placeholders_are_filled_from_the_conversation_and_the_agent():
    values = placeholder_values(CONVERSATION, AGENT)
    text = "Hi {{contact.first_name}}, {{ agent.name }} here ({{agent.id}}) on {{conversation.channel}}: {{contact.email}}"
    assert render(text, values) == "Hi Dana, Ann Lee here (ann) on telegram: d@x.example"


def test_an_empty_value_takes_the_fallback_or_nothing():
    values = placeholder_values({"_id": "c2", "contact": {}}, None)
    assert render("Hi {{contact.first_name|there}}!{{contact.phone}}", values) == "Hi there!"
    assert render("no placeholders {here}", values) == "no placeholders {here}"


def test_an_unknown_placeholder_or_a_bad_shortcut_is_refused():
    with pytest.raises(ValidationError, match="unknown placeholder contact.nmae"):
        CannedIn(shortcut="hi", text="Hi {{contact.nmae}}")
    for shortcut in ("", "Hi", "-x", "a" * 33, "with space"):
        with pytest.raises(ValidationError):
            CannedIn(shortcut=shortcut, text="x")
    assert CannedIn(shortcut="refund-policy_2", text="ok").shortcut == "refund-policy_2"
