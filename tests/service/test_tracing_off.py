"""Tracing is off without an OTLP endpoint: no provider, and a publish carries no trace context."""

import asyncio

from opentelemetry import trace

from services.router.settings import RouterSettings
from shared import tracing
from shared.broker import Broker


async def test_without_an_endpoint_setup_returns_none_and_publish_adds_no_traceparent(names):
    settings = names.settings(RouterSettings)
    assert settings.otel_exporter_otlp_endpoint is None
    assert tracing.setup(settings, "switchyard-router") is None

    broker = Broker(names.infra.amqp_url, names.topology)
    await broker.start()
    try:
        queue = await broker.channel.declare_queue(exclusive=True)
        await queue.bind(names.topology.events_exchange, "tracing.probe")
        # Even inside a span of the (no-op) API: nothing is recorded, so nothing is propagated.
        with trace.get_tracer("test").start_as_current_span("handling"), tracing.span("also off"):
            await broker.publish_raw(b"{}", "tracing.probe", message_type="tracing.probe", message_id="m1",
                                     workspace_id="default", headers={"x-kept": "yes"})
        async with asyncio.timeout(10):
            async with queue.iterator() as messages:
                async for message in messages:
                    await message.ack()
                    break
        # The workspace and its router partition (shared/topology.py), the caller's own; no traceparent.
        assert message.headers == {"workspace_id": "default", "workspace-partition": "0", "x-kept": "yes"}
    finally:
        await broker.close()
