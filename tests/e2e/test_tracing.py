"""One customer message's spans, exported by OTLP/HTTP from the separate processes, share one trace."""

import asyncio
import json
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass

import aiohttp
import pytest
from aiohttp import web
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)

from deploy.local import free_port
from tests.e2e.client import StackClient


@dataclass(frozen=True)
class Span:
    service: str
    name: str
    trace_id: str
    span_id: str
    parent_id: str


class Collector:
    """An OTLP/HTTP receiver: POST /v1/traces (protobuf), every span kept with its service.name."""

    def __init__(self) -> None:
        self.spans: list[Span] = []
        self.arrived = asyncio.Event()

    async def receive(self, request: web.Request) -> web.Response:
        export = ExportTraceServiceRequest.FromString(await request.read())
        for resource_spans in export.resource_spans:
            attributes = {a.key: a.value.string_value for a in resource_spans.resource.attributes}
            for scope in resource_spans.scope_spans:
                self.spans.extend(Span(attributes.get("service.name", ""), s.name, s.trace_id.hex(), s.span_id.hex(),
                                       s.parent_span_id.hex()) for s in scope.spans)
        self.arrived.set()
        return web.Response(body=ExportTraceServiceResponse().SerializeToString(), content_type="application/x-protobuf")

    async def callback(self, request: web.Request) -> web.Response:
        return web.json_response({})

    def chain(self) -> list[Span] | None:
        """intake's HTTP span → the router's consumer span → the agents' consumer span, if all arrived."""
        for posted in (s for s in self.spans if s.service == "switchyard-intake" and s.name == "POST /v1/messages"):
            routed = self._child(posted, "switchyard-router")
            delivered = self._child(routed, "switchyard-agents") if routed else None
            if delivered:
                return [posted, routed, delivered]
        return None

    def reply_chain(self) -> list[Span] | None:
        """The agents' HTTP span of a reply → intake's outbound sender span, if both arrived."""
        for replied in (s for s in self.spans if s.service == "switchyard-agents" and s.name.startswith("POST ")):
            sent = self._child(replied, "switchyard-intake")
            if sent:
                return [replied, sent]
        return None

    def _child(self, parent: Span, service: str) -> Span | None:
        return next((s for s in self.spans if s.service == service and s.parent_id == parent.span_id
                     and s.trace_id == parent.trace_id), None)

    async def wait_for(self, found: Callable[[], list[Span] | None], deadline: float) -> list[Span]:
        async with asyncio.timeout(deadline):
            while (spans := found()) is None:
                self.arrived.clear()
                await self.arrived.wait()
        return spans


@pytest.fixture
async def collector() -> AsyncIterator[tuple[Collector, str]]:
    receiver = Collector()
    app = web.Application()
    app.router.add_post("/v1/traces", receiver.receive)
    app.router.add_post("/callback", receiver.callback)  # where intake sends the replies
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    yield receiver, f"http://127.0.0.1:{port}"
    await runner.cleanup()


@pytest.mark.e2e
async def test_one_message_is_one_trace_across_intake_router_and_agents(stack_factory, collector):
    receiver, endpoint = collector
    callbacks = {"default": {"url": f"{endpoint}/callback", "secret": "trace-test-secret"}}
    built = stack_factory(OTEL_EXPORTER_OTLP_ENDPOINT=endpoint, INTAKE_CALLBACKS=json.dumps(callbacks))
    built.start_all()
    async with aiohttp.ClientSession() as session:
        client = StackClient(session, built.url("intake"), built.url("agents"), "test-key")
        await client.put_agent("ada")
        await client.post_until_accepted("trace-customer", "where is my parcel?", uuid.uuid4().hex)

        # The spans are exported in batches (every few seconds), hence the long deadline.
        posted, routed, delivered = await receiver.wait_for(receiver.chain, deadline=60)
        assert posted.trace_id == routed.trace_id == delivered.trace_id
        assert routed.name == "router process" and delivered.name.startswith("agents.")
        assert posted.parent_id == ""  # the customer's message starts the trace

        (conversation,) = await client.conversations("ada")
        async with session.post(f"{client.agents_url}/v1/conversations/{conversation['conversation_id']}/messages",
                                json={"text": "on its way"}, headers=client.headers) as response:
            assert response.status == 201, await response.text()
    replied, sent = await receiver.wait_for(receiver.reply_chain, deadline=60)
    assert replied.trace_id == sent.trace_id and sent.name == "outbound.api process"
