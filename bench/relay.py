"""What the socket relay (shared/relay.py) costs: a frame from one replica to a socket on another.

Run from the repo root: `python -m bench.relay [--frames 20000] [--paced 2000] [--rate 1000]`.
It prints figures; it asserts nothing about time.

Two processes' ends of the agents relay, each on its own broker connection (as two replicas
are), in a throw-away namespace of the broker at AMQP_URL; B holds a "socket" of one key:

- publish: what the sending replica pays per frame (the publish without a confirm, which its
  own desks never wait for), over --frames frames sent back to back;
- burst: --frames frames back to back, until B has shown them all (frames/s), and in order;
- paced: --paced frames at --rate per second, each frame's time from A's send to B's delivery
  (median, p99): the latency a desk on another replica adds;
- confirmed: a web chat reply's relay (mandatory and confirmed, to learn whether a socket is held);
- bare: the burst with aio-pika alone, no relay: the machine's and broker's own figure beside it.
"""

import argparse
import asyncio
import os
import time
import uuid

import aio_pika

from bench.stack import percentile
from deploy import cleanup
from shared.broker import Broker
from shared.relay import SocketRelay
from shared.topology import Topology

KEY = ("bench", "agent-1")


async def noop() -> None:
    return None


async def bare_burst(sender_broker: Broker, receiver_broker: Broker, frames: int) -> None:
    """The same burst with aio-pika alone (default exchange, an exclusive queue, no relay): the
    machine's and broker's own figure, to read the relay's beside."""
    receiving = await receiver_broker.new_channel(prefetch=0)
    queue = await receiving.declare_queue(exclusive=True, auto_delete=True)
    got = 0
    done = asyncio.Event()

    async def count(_message: object) -> None:
        nonlocal got
        got += 1
        if got >= frames:
            done.set()

    await queue.consume(count, no_ack=True)
    sending = await sender_broker.new_channel(prefetch=0, publisher_confirms=False)
    started = time.perf_counter()
    for n in range(frames):
        body = aio_pika.Message(f'{{"n": {n}}}'.encode(), delivery_mode=aio_pika.DeliveryMode.NOT_PERSISTENT)
        await sending.default_exchange.publish(body, queue.name)
    await asyncio.wait_for(done.wait(), 120)
    elapsed = time.perf_counter() - started
    print(f"bare aio-pika burst (no relay): {frames} in {elapsed:.2f} s = {frames / elapsed:,.0f} frames/s")
    await sending.close()
    await receiving.close()


async def run(frames: int, paced: int, rate: float) -> None:
    amqp_url = os.environ.get("AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/")
    namespace = f"benchrelay{uuid.uuid4().hex[:8]}"
    topology = Topology(namespace, "quorum", partitions=1)
    sender_broker, receiver_broker = Broker(amqp_url, topology), Broker(amqp_url, topology)
    received: list[tuple[float, int]] = []
    done = asyncio.Event()
    expected = 0

    async def deliver(_key: tuple[str, str], frame: dict) -> None:
        received.append((time.perf_counter(), frame["n"]))
        if len(received) >= expected:
            done.set()

    async def ignore(_key: tuple[str, str], _frame: dict) -> None:
        return None

    try:
        await sender_broker.start()
        await receiver_broker.start()
        sender = SocketRelay(sender_broker, "agents", ignore, noop)
        receiver = SocketRelay(receiver_broker, "agents", deliver, noop)
        await sender.start()
        await receiver.start()
        await receiver.watch(KEY)

        expected, started = frames, time.perf_counter()
        costs = []
        for n in range(frames):
            t0 = time.perf_counter()
            await sender.publish(KEY, {"type": "message", "n": n, "at": t0})
            costs.append(time.perf_counter() - t0)
        await asyncio.wait_for(done.wait(), 120)
        elapsed = received[-1][0] - started
        in_order = [n for _, n in received] == list(range(frames))
        costs.sort()
        print(f"publish (sender's cost per frame): median {percentile(costs, 50) * 1e6:.0f} us, "
              f"p99 {percentile(costs, 99) * 1e6:.0f} us")
        print(f"burst: {frames} frames in {elapsed:.2f} s = {frames / elapsed:,.0f} frames/s, in order: {in_order}")

        received.clear()
        done.clear()
        expected = paced
        sent_at: dict[int, float] = {}
        for n in range(paced):
            sent_at[n] = time.perf_counter()
            await sender.publish(KEY, {"type": "message", "n": n})
            await asyncio.sleep(1 / rate)
        await asyncio.wait_for(done.wait(), 120)
        latencies = sorted(at - sent_at[n] for at, n in received)
        print(f"paced at {rate:g}/s: send to delivery on the other replica median "
              f"{percentile(latencies, 50) * 1e3:.2f} ms, p99 {percentile(latencies, 99) * 1e3:.2f} ms")

        confirmed = []
        for n in range(500):
            t0 = time.perf_counter()
            assert await sender.publish_confirmed(KEY, {"type": "message", "n": n})
            confirmed.append(time.perf_counter() - t0)
        confirmed.sort()
        print(f"confirmed (web chat reply): median {percentile(confirmed, 50) * 1e3:.2f} ms, "
              f"p99 {percentile(confirmed, 99) * 1e3:.2f} ms")
        await sender.stop()
        await receiver.stop()
        await bare_burst(sender_broker, receiver_broker, frames)
    finally:
        await sender_broker.close()
        await receiver_broker.close()
        broker = cleanup.Broker.from_urls(amqp_url)
        listing, _ = await cleanup.list_broker(broker, use_rabbitmqctl=False)
        if listing is None:
            listing = cleanup.known_names(namespace)
        await cleanup.remove_namespaces(broker, listing, [namespace], force=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=20_000)
    parser.add_argument("--paced", type=int, default=2_000)
    parser.add_argument("--rate", type=float, default=1_000)
    args = parser.parse_args()
    asyncio.run(run(args.frames, args.paced, args.rate))


if __name__ == "__main__":
    main()
