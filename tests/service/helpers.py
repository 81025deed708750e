"""Helpers for service tests: run the apps in this event loop, read desk frames."""

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass

from aiohttp import ClientWebSocketResponse, web
from aiohttp.test_utils import TestClient

from services.agents.app import create_app as create_agents
from services.agents.frames import DESK_FRAME
from services.agents.settings import AgentsSettings
from services.intake.app import create_app as create_intake
from services.intake.settings import IntakeSettings
from services.reporting.app import create_app as create_reporting
from services.reporting.settings import ReportingSettings
from services.router.app import create_app as create_router
from services.router.settings import RouterSettings
from tests.conftest import API_KEY, Names, auth, free_port, serve
from tests.e2e.client import StackClient


@dataclass
class Apps:
    intake: TestClient
    router: TestClient
    agents: TestClient
    reporting: TestClient | None = None  # running_apps(..., reporting={...}) starts it

    async def put_agent(self, agent_id: str, *, skills: dict | None = None, capacity: int = 3, status: str = "online") -> None:
        await self.api.put_agent(agent_id, skills=skills, capacity=capacity, status=status)

    @property
    def api(self) -> StackClient:
        """The same REST client the end-to-end tests use, pointed at these apps."""
        return StackClient(self.agents.session, str(self.intake.make_url("")), str(self.agents.make_url("")), API_KEY)

    async def post(self, contact: str, text: str, **fields) -> str:
        response = await self.intake.post("/v1/messages", json={"contact": {"id": contact}, "text": text, **fields}, headers=auth())
        assert response.status == 202, await response.text()
        return (await response.json())["message_id"]

    async def desk(self, agent_id: str) -> "Desk":
        ws = await self.agents.ws_connect(f"/v1/agents/{agent_id}/ws?token=test-key")
        desk = Desk(ws)
        snapshot = await desk.next_frame()
        assert snapshot["type"] == "snapshot"
        desk.snapshot = snapshot
        return desk


class Desk:
    """An agent's WebSocket, read frame by frame with a timeout (never a sleep)."""

    def __init__(self, ws: ClientWebSocketResponse) -> None:
        self.ws = ws
        self.snapshot: dict = {}

    async def next_frame(self, timeout: float = 15) -> dict:
        """The next frame, held to the desk's frame contract (services/agents/frames.py): a frame the
        page does not know fails the test that got it."""
        message = await asyncio.wait_for(self.ws.receive(), timeout)
        frame = json.loads(message.data)
        DESK_FRAME.validate_python(frame)
        return frame

    async def frames_until(self, done, timeout: float = 20) -> list[dict]:
        frames: list[dict] = []
        async with asyncio.timeout(timeout):
            while not done(frames):
                frames.append(await self.next_frame(timeout))
        return frames


def texts(frames: list[dict]) -> list[str]:
    """Customer texts in the frames, in the order the desk got them."""
    out = []
    for frame in frames:
        if frame["type"] == "conversation.assigned":
            out += [m["text"] for m in frame["messages"]]
        elif frame["type"] == "message" and frame["message"]["direction"] == "inbound":
            out.append(frame["message"]["text"])
    return out


@asynccontextmanager
async def running_apps(names: Names, *, agents_settings: dict | None = None, router_settings: dict | None = None,
                       reporting: dict | None = None, **intake_overrides) -> AsyncIterator[Apps]:
    """The three apps on real ports; keyword arguments are intake settings, the dicts the others'.

    `reporting` (its settings, `{}` for the defaults) starts the reporting service too: it consumes
    `<ns>.reporting.ingest`, so a test that reads that queue itself leaves it out."""
    async with AsyncExitStack() as stack:
        reporter = None
        if reporting is not None:
            reporter = await stack.enter_async_context(serve(create_reporting(names.settings(ReportingSettings,
                                                                                             **reporting))))
        agents = await stack.enter_async_context(serve(create_agents(names.settings(AgentsSettings, **(agents_settings or {})))))
        router = await stack.enter_async_context(serve(create_router(names.settings(RouterSettings, **(router_settings or {})))))
        intake_settings = names.settings(IntakeSettings, agents_url=str(agents.make_url("/")), **intake_overrides)
        intake = await stack.enter_async_context(serve(create_intake(intake_settings)))
        yield Apps(intake, router, agents, reporter)


@asynccontextmanager
async def stand_in_server(*routes: tuple[str, str, object]) -> AsyncIterator[str]:
    """A local HTTP server standing in for a provider's API: (method, path, handler) routes; yields its base URL."""
    app = web.Application()
    for method, path, handler in routes:
        app.router.add_route(method, path, handler)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        await runner.cleanup()


@asynccontextmanager
async def callback_receiver(handler) -> AsyncIterator[str]:
    """A local HTTP server standing in for an external system's callback URL; yields that URL."""
    async with stand_in_server(("POST", "/hook", handler)) as base:
        yield f"{base}/hook"
