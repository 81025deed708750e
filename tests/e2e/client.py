"""A customer-side and desk-side client of a running stack, for end-to-end tests."""

import asyncio
import itertools
import json
import time

import aiohttp


class StackClient:
    def __init__(self, session: aiohttp.ClientSession, intake_url: str, agents_url: str, api_key: str,
                 *, other_intakes: tuple[str, ...] = ()) -> None:
        self.session = session
        self.intake_url = intake_url
        self.agents_url = agents_url
        self.headers = {"Authorization": f"Bearer {api_key}"}
        self.api_key = api_key
        # Intake replicas a careful client turns to when the one it posts to stops answering.
        self.intake_urls = [intake_url, *other_intakes]

    async def put_agent(self, agent_id: str, *, skills: dict | None = None, capacity: int = 50, status: str = "online") -> None:
        """Create the agent (name from its id) and set its presence."""
        body = {"name": agent_id.title(), "skills": skills or {}, "max_conversations": capacity}
        async with self.session.put(f"{self.agents_url}/v1/agents/{agent_id}", json=body, headers=self.headers) as r:
            assert r.status == 200, await r.text()
        async with self.session.put(f"{self.agents_url}/v1/agents/{agent_id}/status", json={"status": status}, headers=self.headers) as r:
            assert r.status == 200, await r.text()

    async def post_until_accepted(self, contact: str, text: str, key: str, deadline: float = 60) -> str:
        """Post like a careful external system: retry with the same Idempotency-Key until a 202."""
        intakes = itertools.cycle(self.intake_urls)
        intake_url = next(intakes)
        async with asyncio.timeout(deadline):
            while True:
                try:
                    async with self.session.post(
                        f"{intake_url}/v1/messages",
                        json={"contact": {"id": contact}, "text": text},
                        headers={**self.headers, "Idempotency-Key": key},
                    ) as response:
                        if response.status == 202:
                            return (await response.json())["message_id"]
                        assert response.status == 503, await response.text()
                except aiohttp.ClientConnectionError:
                    intake_url = next(intakes)  # that replica is gone: the same post to the next
                await asyncio.sleep(0.1)  # back off before the retry, as a client would

    async def conversations(self, assignee: str) -> list[dict]:
        """Every conversation of the assignee with its messages (retrying while the service restarts)."""
        async with self.session.get(f"{self.agents_url}/v1/conversations", params={"assignee_id": assignee, "limit": "1000"}, headers=self.headers) as r:
            listed = (await r.json())["conversations"]
        full = []
        for conversation in listed:
            async with self.session.get(f"{self.agents_url}/v1/conversations/{conversation['conversation_id']}", headers=self.headers) as r:
                full.append(await r.json())
        return full


class DeskRecorder:
    """Keeps an agent's desk connected (reconnecting) and records every live message frame."""

    def __init__(self, session: aiohttp.ClientSession, agents_url: str, agent_id: str, api_key: str,
                 *, other_agents: tuple[str, ...] = ()) -> None:
        # The agents replicas it may connect to: it goes on to the next whenever its socket drops.
        self.urls = itertools.cycle(f"{url.replace('http', 'ws', 1)}/v1/agents/{agent_id}/ws?token={api_key}"
                                    for url in (agents_url, *other_agents))
        self.url = next(self.urls)
        self.rotate = bool(other_agents)
        self.session = session
        self.live_message_ids: list[str] = []  # from live frames: each must come once
        self.seen: set[str] = set()  # live frames plus the snapshots sent on every reconnect
        self._task: asyncio.Task | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run())

    async def stop(self) -> None:
        if self._task:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    async def _run(self) -> None:
        while True:
            try:
                async with self.session.ws_connect(self.url) as ws:
                    async for frame in ws:
                        if frame.type != aiohttp.WSMsgType.TEXT:
                            break  # an error frame: the server went away (killed); reconnect
                        self._record(json.loads(frame.data))
            except aiohttp.ClientError:
                pass
            if self.rotate:
                self.url = next(self.urls)
            await asyncio.sleep(0.2)  # reconnect backoff while the agents service restarts

    def _record(self, frame: dict) -> None:
        if frame["type"] == "snapshot":
            self.seen |= {m["message_id"] for c in frame["conversations"] for m in c["messages"]}
            return
        if frame["type"] == "conversation.assigned":
            live = [m["message_id"] for m in frame["messages"]]
        elif frame["type"] == "message" and frame["message"]["direction"] == "inbound":
            live = [frame["message"]["message_id"]]
        else:
            return
        self.live_message_ids += live
        self.seen |= set(live)


class TimedDeskRecorder(DeskRecorder):
    """A DeskRecorder that also keeps when each live frame came, for which conversation, with which messages."""

    def __init__(self, session: aiohttp.ClientSession, agents_url: str, agent_id: str, api_key: str,
                 *, other_agents: tuple[str, ...] = ()) -> None:
        super().__init__(session, agents_url, agent_id, api_key, other_agents=other_agents)
        self.agent_id = agent_id
        self.connected = asyncio.Event()  # set once the first snapshot came
        # (monotonic time, "assigned", "message" or "snapshot", conversation id, message ids)
        self.frames: list[tuple[float, str, str, list[str]]] = []

    def _record(self, frame: dict) -> None:
        now = time.monotonic()
        if frame["type"] == "snapshot":
            self.connected.set()
            # A desk that reconnected learns from its snapshot what it missed while away.
            for conversation in frame["conversations"]:
                ids = [m["message_id"] for m in conversation["messages"] if m["direction"] == "inbound"]
                if ids:
                    self.frames.append((now, "snapshot", conversation["conversation"]["conversation_id"], ids))
        elif frame["type"] == "conversation.assigned":
            ids = [m["message_id"] for m in frame["messages"]]
            self.frames.append((now, "assigned", frame["conversation"]["conversation_id"], ids))
        elif frame["type"] == "message" and frame["message"]["direction"] == "inbound":
            self.frames.append((now, "message", frame["conversation_id"], [frame["message"]["message_id"]]))
        super()._record(frame)
