"""The desk's reconnecting socket (static/desk/socket.js) in a real browser, against a stand-in for the
agents service: the real desk files, a fake agent and a WebSocket the test drops or refuses at will.

A dropped feed comes back by itself; a feed that will not open, for a key that is no longer valid,
signs the agent out with the service's reason instead of retrying for ever.
"""

import asyncio
import re
from urllib.parse import urlencode

import pytest
from aiohttp import WSCloseCode, web
from aiohttp.test_utils import TestServer
from playwright.async_api import TimeoutError as PlaywrightTimeoutError
from playwright.async_api import async_playwright, expect

from services.agents.pages import add_desk_routes
from tests.e2e.test_browser import CHROMIUM, CHROMIUM_ARGS, pytestmark, record_errors  # noqa: F401 (the skip)

KEY_GONE = {"error": {"status": 401, "message": "unknown or revoked API key"}}


class FakeAgents:
    def __init__(self) -> None:
        self.sockets: set[web.WebSocketResponse] = set()
        self.opened = 0
        self.key_gone = False

    def app(self) -> web.Application:
        app = web.Application()
        add_desk_routes(app)
        app.router.add_get("/v1/agents/{agent_id}", self.agent)
        app.router.add_get("/v1/agents/{agent_id}/ws", self.socket)
        return app

    async def agent(self, request: web.Request) -> web.Response:
        if self.key_gone:
            return web.json_response(KEY_GONE, status=401)
        agent_id = request.match_info["agent_id"]
        return web.json_response({"agent_id": agent_id, "name": "Ann", "status": "online"})

    async def socket(self, request: web.Request) -> web.StreamResponse:
        if self.key_gone:
            return web.json_response(KEY_GONE, status=401)  # the upgrade is refused: the socket never opens
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        self.opened += 1
        self.sockets.add(ws)
        await ws.send_json({"type": "snapshot", "status": "online", "conversations": [], "offers": []})
        async for _ in ws:
            pass
        self.sockets.discard(ws)
        return ws

    async def drop(self) -> None:
        for ws in list(self.sockets):
            await ws.close(code=WSCloseCode.GOING_AWAY)


async def test_the_desk_feed_comes_back_after_a_drop_and_gives_up_on_a_revoked_key():
    fake = FakeAgents()
    server = TestServer(fake.app())
    await server.start_server()
    try:
        async with async_playwright() as playwright:
            browser = await playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True)
            try:
                page = await browser.new_page()
                errors: list[str] = []
                record_errors(page, errors, "desk")
                page.on("console", lambda message: errors.append(f"desk console: {message.text}")
                        if message.type == "error" and "WebSocket" not in message.text
                        and not message.text.startswith("Failed to load resource") else None)
                page.on("response", lambda response: errors.append(f"desk: {response.status} {response.url}")
                        if response.status >= 400 and "/v1/" not in response.url else None)
                await page.goto(str(server.make_url("/desk?" + urlencode({"agent_id": "ann", "token": "k1"}))))
                await page.click("#connect")
                connection = page.get_by_test_id("connection")
                await expect(connection).to_have_attribute("data-state", "open")
                await expect(page.locator("#connection-text")).to_have_text("Live")

                # The server drops the feed: the desk says so and is back within a second (0.5 s ± 20%).
                await fake.drop()
                await expect(page.locator("#connection-text")).to_have_text(re.compile(r"Live|Reconnecting"))
                # The page may still say "open" before it has seen the drop: wait for the second socket
                # (the server counts them), then for the page to be open on it.
                async with asyncio.timeout(10):
                    while fake.opened < 2:
                        await asyncio.sleep(0.05)
                await expect(connection).to_have_attribute("data-state", "open", timeout=5000)
                assert fake.opened == 2

                # The key is revoked and the feed dropped: one retry fails to open, the next asks the
                # service about the agent and, told the key is gone, signs out with its reason.
                fake.key_gone = True
                await fake.drop()
                await expect(page.locator("#login-error")).to_have_text(KEY_GONE["error"]["message"], timeout=10_000)
                await expect(page.locator("#login-view")).to_be_visible()
                await expect(page.locator("#desk-view")).to_be_hidden()
                assert await page.evaluate("localStorage.getItem('switchyard.desk.token')") is None
                # Stopped: no socket opens again (a retry would within its backoff, under 3 s by now).
                with pytest.raises(PlaywrightTimeoutError):
                    await page.wait_for_event("websocket", timeout=3000)
                assert fake.opened == 2
                assert errors == []
            finally:
                await browser.close()
    finally:
        await server.close()
