"""The worked example in deploy/queues.example.yaml (docs/routing.md) parses and routes as documented."""

from pathlib import Path

from services.router.config import classify, load_config
from services.router.core import RoutingCore
from tests.unit.test_routing_acd import agent, assigned, at, msg, offered

EXAMPLE = load_config(Path(__file__).parents[2] / "deploy" / "queues.example.yaml")


def test_the_example_classifies_as_the_guide_says():
    monday_noon = at(3 * 3600)  # 12:00 UTC on a Monday: 13:00 in Berlin
    assert classify(EXAMPLE, msg("a", "where is my invoice?"), monday_noon) == ("billing", "rule 2", 0)
    assert classify(EXAMPLE, msg("a", "order #1234567 late"), monday_noon) == ("billing", "rule 3", 1)
    assert classify(EXAMPLE, msg("a", "hi", attributes={"tier": "vip"}), monday_noon) == ("vip", "rule 0", 3)
    assert classify(EXAMPLE, msg("a", "crash beim Start", language="de"), monday_noon)[0] == "tier2"
    assert classify(EXAMPLE, msg("a", "crash beim Start", language="de"), at(-10 * 3600))[0] == "general"  # night
    assert classify(EXAMPLE, msg("a", "hello", channel="voice"), monday_noon)[0] == "phone"


def test_the_example_routes_the_walkthrough():
    core = RoutingCore(EXAMPLE)
    core.on_agent(agent("ann", skills={"billing": 4, "support": 2}, capacity=4, media={"chat": 3, "email": 5}), at(0))
    core.on_agent(agent("bob", skills={"billing": 1, "support": 4}, capacity=4, media={"voice": 1}), at(0))
    # billing needs billing 3: ann; a VIP is offered to the most skilled in support: bob
    assert assigned(core.on_message(msg("t1", "invoice wrong"), at(1))) == [("ann", "t1")]
    assert offered(core.on_message(msg("t2", "hello", attributes={"tier": "vip"}), at(2))) == [("bob", "t2")]


def test_the_example_surveys_the_default_workspace_in_english_and_ukrainian():
    surveys = EXAMPLE.csat["default"]
    assert surveys.surveys("telegram") and not surveys.surveys("instagram")
    assert surveys.question("uk")[0] == "uk" and surveys.question("ru")[0] == "en"  # no Russian question here
    assert "other" not in EXAMPLE.csat
