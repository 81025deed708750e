"""Per-channel intake throughput: each channel's webhook (verify, normalize, publish), beside the
same run's bare publish.

Run from the repo root: `python -m bench.channels [--requests N] [--concurrency C]` (part of
`make bench`). It prints figures; it asserts nothing about time.

- channel rows: intake runs as its own process (as in production), configured for every channel
  whose test fixture (`tests/fixtures/<channel>.py`) offers `BENCH_CONFIG` and `bench_request`:
  one valid, signed webhook call as the provider sends it. N calls per channel at concurrency C;
  per_s = N / (first call sent .. last answer). Every answer must be 2xx: the others are counted
  as errors. The `api` row is POST /v1/messages with an API key.
- publish: the baseline, in this process: N confirmed publishes of an InboundMessage of the same
  size into the same exchange, to the same queue intake publishes to, at concurrency C.

ratio = per_s / publish_per_s: what verifying and normalizing a channel costs on top of the
publish every channel has to make. Only intake runs: what it publishes waits in the router's
queue, which is deleted with the namespace at the end.
"""

import argparse
import asyncio
import importlib
import json
import shutil
import sys
import tempfile
import time
import uuid
from pathlib import Path

import aio_pika
import aiohttp

from deploy import local
from deploy.local import LocalSettings, Stack, free_port
from shared import events
from shared.amqp_hosts import connect_to_any
from shared.models import Contact, InboundMessage, new_id
from shared.topology import Topology, declare_core

WORKSPACE = "default"
API_KEY = "bench-key"
FIXTURE_CHANNELS = ("telegram", "sms", "whatsapp", "messenger", "email")
FIXTURE_MODULES = {"sms": "twilio"}  # the channel's fixture module, where its name differs


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=32)
    return parser.parse_args(argv)


def load_fixtures() -> dict[str, object]:
    """The channels whose fixtures can produce benchmark calls."""
    found = {}
    for channel in FIXTURE_CHANNELS:
        try:
            module = importlib.import_module(f"tests.fixtures.{FIXTURE_MODULES.get(channel, channel)}")
        except ImportError:
            continue
        if hasattr(module, "bench_request") and hasattr(module, "BENCH_CONFIG"):
            found[channel] = module
    return found


async def hammer(session: aiohttp.ClientSession, base_url: str, calls, count: int, concurrency: int) -> tuple[float, int]:
    """POST every call; (calls per second, non-2xx answers)."""
    remaining = iter(range(count))
    errors = 0

    async def worker() -> None:
        nonlocal errors
        for index in remaining:
            path, headers, body = calls(index)
            async with session.post(base_url + path, data=body, headers=headers) as response:
                await response.read()
                if response.status >= 300:
                    errors += 1
                    if errors == 1:
                        print(f"  first error: HTTP {response.status} {(await response.text())[:200]}", file=sys.stderr)

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return count / (time.perf_counter() - started), errors


def api_call(index: int) -> tuple[str, dict[str, str], bytes]:
    body = {"contact": {"id": f"bench-{index % 200}"}, "text": f"benchmark message {index}"}
    headers = {"Authorization": f"Bearer {API_KEY}", "Content-Type": "application/json", "Idempotency-Key": uuid.uuid4().hex}
    return "/v1/messages", headers, json.dumps(body).encode()


async def measure_channels(intake_url: str, fixtures: dict, args: argparse.Namespace) -> dict[str, tuple[float, int]]:
    results = {}
    connector = aiohttp.TCPConnector(limit=args.concurrency)
    async with aiohttp.ClientSession(connector=connector) as session:
        await hammer(session, intake_url, api_call, 200, args.concurrency)  # warm-up
        results["api"] = await hammer(session, intake_url, api_call, args.requests, args.concurrency)
        for channel, module in fixtures.items():
            run_id = uuid.uuid4().hex[:8]  # fresh provider ids: a repeated id would be a duplicate

            def calls(index: int, module=module, run_id=run_id) -> tuple[str, dict[str, str], bytes]:
                return module.bench_request(WORKSPACE, module.BENCH_CONFIG, hash(run_id) % 10_000_000 * 100_000 + index)

            results[channel] = await hammer(session, intake_url, calls, args.requests, args.concurrency)
    return results


async def measure_publish(amqp_url: str, namespace: str, args: argparse.Namespace) -> float:
    message = InboundMessage(message_id=new_id(), workspace_id=WORKSPACE, channel="api", thread_id="c",
                             contact=Contact(id="c"), text="benchmark message 000000")
    body = message.model_dump_json().encode()
    topology = Topology(namespace)
    connection = await connect_to_any(amqp_url)
    try:
        channel = await connection.channel(publisher_confirms=True)
        await declare_core(channel, topology)
        exchange = await channel.get_exchange(topology.events_exchange)
        remaining = iter(range(args.requests))

        async def publisher() -> None:
            for _ in remaining:
                await exchange.publish(
                    aio_pika.Message(body, message_id=new_id(), delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
                                     type=events.MESSAGE_RECEIVED, content_type="application/json"),
                    events.MESSAGE_RECEIVED, mandatory=True,
                )

        started = time.perf_counter()
        await asyncio.gather(*(publisher() for _ in range(args.concurrency)))
        return args.requests / (time.perf_counter() - started)
    finally:
        await connection.close()


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    fixtures = load_fixtures()
    log_dir = Path(tempfile.mkdtemp(prefix="switchyard-bench-channels-"))
    base = local.bring_up_infrastructure(LocalSettings(), ":memory:", free_port(), log_dir / "secantusd.log")
    namespace = f"bench{uuid.uuid4().hex[:12]}"
    env = local.stack_env(base, namespace, f"{WORKSPACE}:{API_KEY}")
    stack = Stack.on_free_ports(env, log_dir)
    # Twilio signs the public URL: the fixture signs for the one it names.
    public_urls = [m.BENCH_PUBLIC_URL for m in fixtures.values() if hasattr(m, "BENCH_PUBLIC_URL")]
    stack.env["INTAKE_PUBLIC_URL"] = public_urls[0] if public_urls else stack.url("intake")
    stack.env["INTAKE_CHANNELS"] = json.dumps({WORKSPACE: {ch: m.BENCH_CONFIG for ch, m in fixtures.items()}})
    try:
        stack.start("intake")
        print(f"intake up; {args.requests} calls per channel at concurrency {args.concurrency} ...", flush=True)
        results = asyncio.run(measure_channels(stack.url("intake"), fixtures, args))
        stack.stop_all()
        publish_per_s = asyncio.run(measure_publish(base.amqp_url, namespace, args))
    finally:
        stack.stop_all()
        asyncio.run(local.remove_namespace(base.amqp_url, base.mongo_url, namespace))
        base.stop()
        shutil.rmtree(log_dir, ignore_errors=True)
    print(f"publish_per_s={publish_per_s:.2f}")
    for channel, (per_s, errors) in results.items():
        print(f"channel={channel} per_s={per_s:.2f} ratio={per_s / publish_per_s:.2f} errors={errors}")


if __name__ == "__main__":
    main()
