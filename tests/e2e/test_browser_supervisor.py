"""The supervisor page in a real browser (Debian's chromium) over the whole stack, reporting included.

The wallboard's queue tile moves when a customer writes (nobody online: one waiting, its wait
ticking; a missed target in red, the breach listed), an agent set away from the wallboard is away
in the agents API and on the board, a transfer from a breach's row is accepted (a refused one shows
the service's message, inline), and the board reconnects by itself when reporting restarts. The reports view draws
its Chart.js charts and a table row after traffic, downloads the CSV, and fits a phone's width. No
page error and no console error anywhere.
"""

import asyncio
import json
import re
import uuid
from pathlib import Path
from urllib.parse import urlencode

import aiohttp
import pytest
from playwright.async_api import Browser, Page, async_playwright, expect

from services.reporting.export import COLUMNS
from tests.conftest import API_KEY, auth
from tests.e2e.client import StackClient

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]
WAIT_MS = 30_000  # intake -> router -> reporting's ingest (and its 2 s rollup) -> the live frame
PATIENCE = 30  # seconds, for API polls of the same
ZONE = "Europe/Kyiv"  # the browser's zone: not the machine's, so the page's own zone handling is exercised

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(
        not CHROMIUM.exists(), reason=f"{CHROMIUM} not found (install Debian's chromium: apt-get install chromium)"
    ),
]


OVERFLOW = "() => document.documentElement.scrollWidth - window.innerWidth"  # > 0: something runs off the side
# A refused call the test makes on purpose: the browser logs its 4xx, whatever the page does with it.
REFUSED_TRANSFER = re.compile(r"/v1/conversations/no-such-[0-9a-f]+/transfer$")
LIVE_REFUSED = re.compile(r"/v1/reports/live\?tz=")  # a wrong key, on purpose
# While reporting is stopped on purpose, the browser logs each failed attempt to reconnect.
SOCKET_DOWN = re.compile(r"WebSocket connection to .*/v1/reports/live/ws")


class PageErrors(list):
    """Page errors and console errors, but for the ones the test causes on purpose (`expected`)."""

    def __init__(self) -> None:
        super().__init__()
        self.expected: list[re.Pattern] = [REFUSED_TRANSFER]

    def console(self, message) -> None:
        where = message.location.get("url", "")
        if message.type == "error" and not any(p.search(where) or p.search(message.text) for p in self.expected):
            self.append(f"console error: {message.text} ({where})")


async def launch(playwright) -> Browser:
    return await playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True)


async def open_page(browser: Browser, url: str, errors: PageErrors, *, width: int = 1440, height: int = 900,
                    fragment: str = "") -> Page:
    """The supervisor page, signed in by ?token=; every page error and console error recorded."""
    context = await browser.new_context(viewport={"width": width, "height": height}, timezone_id=ZONE,
                                        locale="en-GB", accept_downloads=True)
    page = await context.new_page()
    page.on("pageerror", lambda error: errors.append(f"page error: {error}"))
    page.on("console", errors.console)
    await page.goto(f"{url}/supervisor?{urlencode({'token': API_KEY})}{fragment}")
    await expect(page.locator("#connection")).to_have_attribute("data-state", "open", timeout=WAIT_MS)
    return page


async def poll(check, what: str):
    """Call `check()` until it returns something truthy, within PATIENCE seconds."""
    async with asyncio.timeout(PATIENCE):
        while not (found := await check()):
            await asyncio.sleep(0.2)
    assert found, what
    return found


def tile_metric(page: Page, queue: str, metric: str):
    return page.locator(f"#queues [data-queue='{queue}'] [data-metric='{metric}']")


@pytest.fixture
def sla_stack(stack_factory, tmp_path):
    """The whole stack, reporting included, with one queue whose targets are missed at once: a first
    response within 2 s (a breach while nobody is online) and an answer within 1 s (service level)."""
    queues = tmp_path / "queues.yaml"
    queues.write_text(json.dumps({"queues": [
        {"name": "default", "sla": {"first_response_seconds": 2}, "service_level_seconds": 1}]}))
    stack = stack_factory(ROUTER_QUEUES_FILE=str(queues))
    stack.start_all()
    return stack


async def test_the_wallboard_moves_with_traffic_and_its_actions_work(sla_stack, tmp_path):
    run = uuid.uuid4().hex[:10]
    agent_id = f"sup-{run}"
    agents_url = sla_stack.url("agents")
    errors = PageErrors()
    async with async_playwright() as playwright, aiohttp.ClientSession() as http:
        api = StackClient(http, sla_stack.url("intake"), agents_url, API_KEY)
        browser = await launch(playwright)
        try:
            page = await open_page(browser, sla_stack.url("reporting"), errors)
            assert page.url.endswith("/supervisor")  # the key left the address bar

            # Nobody is online: the customer's conversation waits, and the tile says so.
            await api.post_until_accepted(f"cust-{run}", f"Where is parcel {run}?", f"key-{run}")
            await expect(tile_metric(page, "default", "waiting").locator("dd")).to_have_text("1", timeout=WAIT_MS)
            wait = tile_metric(page, "default", "longest-wait").locator("dd")
            await expect(wait).to_have_text(re.compile(r"^\d+:\d\d$"))
            first = await wait.text_content()
            await expect(wait).not_to_have_text(first, timeout=5_000)  # ticks between frames

            # Its first-response target passes: the breach is on the tile, in red, and in the list.
            breaches = tile_metric(page, "default", "breaches")
            await expect(breaches.locator("dd")).to_have_text("1", timeout=WAIT_MS)
            await expect(breaches).to_have_attribute("data-level", "bad")
            breach = page.locator("#breaches tbody tr[data-conversation-id]")
            await expect(breach).to_have_count(1, timeout=WAIT_MS)
            conversation_id = await breach.get_attribute("data-conversation-id")

            # An agent comes online and takes it, late: service level today is 0 %, in red.
            await api.put_agent(agent_id, capacity=3)
            row = page.locator(f"[data-group='online'] [data-agent-id='{agent_id}']")
            await expect(row).to_be_visible(timeout=WAIT_MS)
            await expect(tile_metric(page, "default", "waiting").locator("dd")).to_have_text("0", timeout=WAIT_MS)
            await expect(row.locator(".facts")).to_contain_text("1/3 held", timeout=WAIT_MS)
            await expect(tile_metric(page, "default", "service-level")).to_have_attribute("data-level", "bad",
                                                                                          timeout=WAIT_MS)

            # The agent labels its contact reason: today's top reasons, up from none at the same hours last week.
            async with http.put(f"{agents_url}/v1/conversations/{conversation_id}/labels",
                                json={"labels": ["parcel late"]}, headers=auth()) as response:
                assert response.status == 200, await response.text()
            reason = page.locator("#reasons [data-label='parcel late']")
            await expect(reason.locator(".today")).to_have_text("1 today", timeout=WAIT_MS)
            await expect(reason.locator(".change")).to_have_attribute("data-direction", "up")
            await expect(reason.locator(".change")).to_have_text("↑ 1 (0 last week)")

            # The supervisor sets the agent away from the board.
            await row.locator("button[data-status='away']").click()
            await expect(row.locator(".result")).to_have_attribute("data-kind", "ok", timeout=WAIT_MS)

            async def agent_status() -> str | None:
                async with http.get(f"{agents_url}/v1/agents/{agent_id}", headers=auth()) as response:
                    status = (await response.json())["status"]
                return status if status == "away" else None

            await poll(agent_status, "the agent is away in the agents API")
            await expect(page.locator(f"[data-group='away'] [data-agent-id='{agent_id}']")).to_be_visible(
                timeout=WAIT_MS)
            await expect(page.locator(f"[data-group='online'] [data-agent-id='{agent_id}']")).to_have_count(0)

            # A transfer of something that does not exist: the service's message, inline.
            await page.fill("#transfer-id", f"no-such-{run}")
            await page.select_option("#transfer-kind", "to_queue")
            await page.fill("#transfer-target", "default")
            await page.click("#transfer button[type='submit']")
            result = page.locator("#transfer-result")
            await expect(result).to_have_attribute("data-kind", "error", timeout=WAIT_MS)
            await expect(result).to_contain_text("does not exist")

            # The breached conversation, transferred back to the queue from its row: accepted, and with
            # nobody online it waits again.
            await breach.get_by_role("button", name=f"Transfer conversation {conversation_id}").click()
            await expect(page.locator("#transfer-id")).to_have_value(conversation_id)
            await expect(page.locator("#transfer-target")).to_be_focused()
            await page.click("#transfer button[type='submit']")
            await expect(result).to_have_attribute("data-kind", "ok", timeout=WAIT_MS)
            await expect(tile_metric(page, "default", "waiting").locator("dd")).to_have_text("1", timeout=WAIT_MS)
            await page.screenshot(path=str(tmp_path / "wallboard.png"), full_page=True)
            assert await page.evaluate(OVERFLOW) <= 0, "the wallboard is wider than a 1440 px screen"
            await page.set_viewport_size({"width": 390, "height": 844})
            assert await page.evaluate(OVERFLOW) <= 0, "the wallboard is wider than a 390 px screen"
            await page.screenshot(path=str(tmp_path / "wallboard-phone.png"), full_page=True)
            await page.set_viewport_size({"width": 1440, "height": 900})

            # Reporting goes away: the board says it is reconnecting, and comes back live by itself.
            errors.expected.append(SOCKET_DOWN)
            await asyncio.to_thread(sla_stack.stop, "reporting")
            await expect(page.locator("#connection")).to_have_attribute("data-state", "reconnecting", timeout=WAIT_MS)
            await expect(page.locator("#connection-text")).to_contain_text("Reconnecting")
            await asyncio.to_thread(sla_stack.start, "reporting")
            await expect(page.locator("#connection")).to_have_attribute("data-state", "open", timeout=60_000)
            errors.expected.remove(SOCKET_DOWN)
            await expect(tile_metric(page, "default", "waiting").locator("dd")).to_have_text("1", timeout=WAIT_MS)
            assert errors == []
        finally:
            await browser.close()


async def test_the_reports_view_charts_tables_and_exports_after_traffic(stack, tmp_path):
    run = uuid.uuid4().hex[:10]
    reporting_url = stack.stack.url("reporting")
    errors = PageErrors()
    async with async_playwright() as playwright, aiohttp.ClientSession() as http:
        api = StackClient(http, stack.intake_url, stack.agents_url, stack.api_key)
        await api.post_until_accepted(f"cust-{run}", f"Invoice {run} is wrong", f"key-{run}")

        async def reported() -> bool:  # the rollup round has counted it
            async with http.get(f"{reporting_url}/v1/reports/live", headers=auth()) as response:
                return any(q["opened_today"] for q in (await response.json())["queues"])

        await poll(reported, "reporting counted the conversation")
        browser = await launch(playwright)
        try:
            page = await open_page(browser, reporting_url, errors, fragment="#reports")
            await expect(page.locator("#tab-reports")).to_have_attribute("aria-selected", "true")
            # The browser's zone, as its ICU names it (Chromium still says Europe/Kiev; both are tz names).
            await expect(page.locator("#tz")).to_have_value(re.compile(r"^Europe/Ki[ey]v$"))

            rows = page.locator("#report-table tbody tr")
            await expect(rows).to_have_count(1, timeout=WAIT_MS)
            await expect(rows.locator("[data-metric='opened']")).to_have_text("1")
            # The bot's columns: nothing given to it, so no deflection rate to show.
            await expect(rows.locator("[data-metric='bot_conversations']")).to_have_text("0")
            await expect(rows.locator("[data-metric='deflection_rate']")).to_have_text("—")
            drawn = await page.evaluate("""() => ['chart-volume', 'chart-speed'].map((id) => {
                const chart = Chart.getChart(id);
                return chart ? {width: chart.width, height: chart.height,
                                opened: chart.data.datasets[0].data} : null;
            })""")
            assert all(chart and chart["width"] > 0 and chart["height"] > 0 for chart in drawn), drawn
            assert drawn[0]["opened"] == [1]

            # Grouped by queue: the row names its queue.
            await page.select_option("#group-by", "queue")
            await page.click("#run-report")
            await expect(page.locator("#report-table tbody [data-field='key']")).to_have_text("default",
                                                                                           timeout=WAIT_MS)

            async with page.expect_download() as download_info:
                await page.click("#export-csv")
            download = await download_info.value
            assert download.suggested_filename.endswith(".csv")
            lines = Path(await download.path()).read_text().splitlines()
            assert lines[0].split(",") == list(COLUMNS)
            assert len(lines) >= 2
            await page.screenshot(path=str(tmp_path / "reports.png"), full_page=True)

            # The page's own rules, run in the browser: local midnights as RFC 3339 across DST changes
            # (what `from` and `to` are sent as), and the documented warning thresholds.
            rules = await page.evaluate("""async () => {
                const format = await import('/supervisor/js/format.js');
                const board = await import('/supervisor/js/wallboard.js');
                return {
                    midnights: [['2026-03-29', 'Europe/Kyiv'], ['2026-03-30', 'Europe/Kyiv'],
                                ['2026-11-01', 'America/New_York'], ['2026-11-02', 'America/New_York'],
                                ['2026-07-01', 'Asia/Kolkata'], ['2026-07-01', 'UTC']]
                        .map(([day, zone]) => format.midnightIn(day, zone)),
                    waits: [null, 60, 61, 180, 181].map(board.waitLevel),
                    levels: [null, 1, 0.8, 0.79, 0.6, 0.59].map(board.serviceLevelLevel),
                };
            }""")
            assert rules["midnights"] == [
                "2026-03-29T00:00:00+02:00", "2026-03-30T00:00:00+03:00", "2026-11-01T00:00:00-04:00",
                "2026-11-02T00:00:00-05:00", "2026-07-01T00:00:00+05:30", "2026-07-01T00:00:00+00:00"]
            assert rules["waits"] == ["ok", "ok", "warn", "warn", "bad"]
            assert rules["levels"] == ["ok", "ok", "ok", "warn", "warn", "bad"]

            # The tabs answer the arrow keys.
            await page.focus("#tab-reports")
            await page.keyboard.press("ArrowLeft")
            await expect(page.locator("#tab-wallboard")).to_be_focused()
            await expect(page.locator("#wallboard-view")).to_be_visible()
            await expect(page.locator("#reports-view")).to_be_hidden()
            await page.keyboard.press("ArrowRight")
            await expect(page.locator("#reports-view")).to_be_visible()

            # Filters the page cannot send are refused in place.
            await page.fill("#tz", "Mars/Olympus_Mons")
            await page.click("#run-report")
            await expect(page.locator("#report-error")).to_contain_text("not a time zone")
            await page.fill("#tz", ZONE)

            # A wrong key: the sign-in form says so (the browser logs the 401 it was answered).
            errors.expected.append(LIVE_REFUSED)
            stranger = await (await browser.new_context()).new_page()
            stranger.on("pageerror", lambda error: errors.append(f"page error: {error}"))
            stranger.on("console", errors.console)
            await stranger.goto(f"{reporting_url}/supervisor?token=not-a-key")
            await expect(stranger.locator("#login-error")).to_contain_text("unknown or expired API key")
            await expect(stranger.locator("#wallboard-view")).to_be_hidden()
            errors.expected.remove(LIVE_REFUSED)

            # A phone's width: nothing runs off the side, on either tab.
            phone = await open_page(browser, reporting_url, errors, width=390, height=844, fragment="#reports")
            await expect(phone.locator("#report-table tbody tr")).to_have_count(1, timeout=WAIT_MS)
            for tab in ("#tab-reports", "#tab-wallboard"):
                await phone.click(tab)
                overflow = await phone.evaluate(OVERFLOW)
                assert overflow <= 0, f"{tab}: {overflow}px wider than the screen"
            await phone.screenshot(path=str(tmp_path / "phone.png"), full_page=True)
            assert errors == []
        finally:
            await browser.close()
