"""The consumer span of a batch: child of its first traced message, linked to every traced one."""

import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from services.router.config import RoutingConfig
from services.router.core import RoutingCore
from services.router.model import Outcome
from services.router.service import outbox_entries
from shared import events, tracing
from shared.models import RoutingEvent
from shared.topology import Topology
from tests.unit.test_routing_acd import agent, at


@pytest.fixture
def spans(monkeypatch) -> InMemorySpanExporter:
    """Tracing on, with spans kept in memory (this provider only: the process-wide one stays the no-op)."""
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    monkeypatch.setattr(tracing, "tracer", provider.get_tracer("test"))
    monkeypatch.setattr(tracing, "_enabled", True)
    return exporter


def _published(name: str) -> dict:
    """The headers a publish inside a span named `name` carries."""
    with tracing.span(name):
        return tracing.current_headers()


def test_a_batch_continues_its_first_traced_message_and_links_every_traced_one(spans):
    first, second = _published("first"), _published("second")
    with tracing.consuming("router", [{"workspace_id": "w"}, first, second]):
        pass
    by_name = {s.name: s for s in spans.get_finished_spans()}
    batch = by_name["router process"]
    assert batch.parent.span_id == by_name["first"].context.span_id
    assert batch.context.trace_id == by_name["first"].context.trace_id
    assert [link.context.span_id for link in batch.links] == [by_name["first"].context.span_id,
                                                             by_name["second"].context.span_id]
    assert batch.attributes["messaging.batch.message_count"] == 3


def test_a_batch_of_untraced_inputs_is_a_root(spans):
    with tracing.consuming("router", [None, {"workspace_id": "w"}]):
        pass
    (batch,) = spans.get_finished_spans()
    assert batch.parent is None and not batch.links


def test_publish_headers_carry_the_w3c_traceparent_of_the_current_span(spans):
    headers = _published("intake")
    (span,) = spans.get_finished_spans()
    context = span.context
    assert context.trace_flags.sampled
    assert headers["traceparent"] == f"00-{context.trace_id:032x}-{context.span_id:016x}-{context.trace_flags:02x}"


def test_the_router_keeps_the_trace_of_the_input_with_its_outbox_entries(spans):
    """Entries published later (or replayed by the next replica) continue the input's trace."""
    outcome = RoutingCore(RoutingConfig()).on_agent(agent("ann"), at(0))
    outcome.merge(Outcome(events=[RoutingEvent(event_id="away:ann:1", type=events.AGENT_SET_AWAY,
                                               workspace_id="default", agent_id="ann", at=at(1))]))
    with tracing.consuming("router", [_published("intake")]):
        entries = outbox_entries(Topology("t", "quorum"), outcome)
        expected = tracing.current_headers()
    assert entries and all(entry["headers"] == expected for entry in entries)
    assert "headers" not in outbox_entries(Topology("t", "quorum"), outcome)[0]  # outside any trace: nothing stored
