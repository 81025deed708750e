"""OpenTelemetry traces that follow one customer message across the services' processes.

Off unless an OTLP endpoint is configured (`OTEL_EXPORTER_OTLP_ENDPOINT`): then `setup` installs
no provider, the API stays the no-op one, and the helpers below return at once (no exporter, no
span processing, no `traceparent` header). On, the W3C trace context rides in the AMQP headers:
`inject` where a message is published (shared/broker.py publish_raw), `consuming` where a batch is
handled (BatchConsumer), so intake → router → agents spans share one trace.
"""

import contextlib
from collections.abc import Iterator, Mapping
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry import propagate, trace
from opentelemetry.trace import Link, NonRecordingSpan, SpanKind

from shared.settings import CommonSettings

tracer = trace.get_tracer("switchyard")
_enabled = False


def setup(settings: CommonSettings, service_name: str) -> Any:
    """Export spans by OTLP/HTTP when an endpoint is configured; the provider (shut it down at exit), or None."""
    global _enabled
    endpoint = settings.otel_exporter_otlp_endpoint
    if not endpoint:
        return None
    # Imported only when on: a service without tracing loads no SDK.
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    provider = TracerProvider(resource=Resource.create({"service.name": settings.otel_service_name or service_name}))
    # The standard variable names the collector's base URL; the traces path is appended, as the SDK does.
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=endpoint.rstrip("/") + "/v1/traces")))
    trace.set_tracer_provider(provider)
    _enabled = True
    return provider


def inject(headers: dict[str, Any]) -> dict[str, Any]:
    """`headers` with the current span's `traceparent` (and `tracestate`) added, when tracing is on."""
    if _enabled:
        propagate.inject(headers)
    return headers


def current_headers() -> dict[str, str]:
    """The current trace context as headers, to store with what is published later (an outbox)."""
    return inject({})


def extract(headers: Mapping[str, Any] | None) -> otel_context.Context:
    """The trace context a message or request carries (AMQP header values may come as bytes)."""
    carrier = {str(k).lower(): v.decode() if isinstance(v, bytes) else str(v) for k, v in (headers or {}).items()}
    return propagate.extract(carrier)


@contextlib.contextmanager
def span(name: str, *, kind: SpanKind = SpanKind.INTERNAL, headers: Mapping[str, Any] | None = None) -> Iterator[None]:
    """A span around a block (child of the context in `headers` when given); nothing when off."""
    if not _enabled:
        yield
        return
    parent = extract(headers) if headers is not None else None
    with tracer.start_as_current_span(name, context=parent, kind=kind):
        yield


@contextlib.contextmanager
def consuming(consumer: str, headers: list[Mapping[str, Any] | None]) -> Iterator[None]:
    """One consumer span per handled batch (a span has one parent): it continues the trace of the
    batch's first traced message and links every traced message's context, so each message's trace
    reaches the batch that handled it. A batch of untraced inputs (timers, untraced publishers) is a root."""
    if not _enabled:
        yield
        return
    traced = [c for c in (_span_context(h) for h in headers) if c.is_valid]
    parent = trace.set_span_in_context(NonRecordingSpan(traced[0])) if traced else otel_context.Context()
    with tracer.start_as_current_span(f"{consumer} process", context=parent, kind=SpanKind.CONSUMER,
                                      links=[Link(c) for c in traced],
                                      attributes={"messaging.system": "rabbitmq",
                                                  "messaging.batch.message_count": len(headers)}):
        yield


def _span_context(headers: Mapping[str, Any] | None) -> trace.SpanContext:
    return trace.get_current_span(extract(headers)).get_span_context()
