"""The supervisors' incidents page in a real browser (Debian's chromium) over the assist app, run in-process
on a real port with the real database and broker, its incidents seeded through the IncidentStore: sign in,
see the active ones newest first, open one (its links and its count per minute), confirm it, see 409s
where they belong, dismiss one after being asked, merge one into another (the counts add up), resolve with a
reply (the API's answer says resolved; the active list no longer has it), the filter for the others, a new
incident showing by itself. axe
finds nothing serious on the list, the detail or the dialogs."""

import re
from datetime import UTC, datetime, timedelta

from playwright.async_api import async_playwright, expect

from services.assist.app import create_app
from services.assist.incidents.store import IncidentStore
from services.assist.settings import AssistSettings
from shared.mongo import create_client
from tests.conftest import API_KEY, WORKSPACE, auth, serve
from tests.e2e.axe import assert_accessible
from tests.e2e.test_browser import (  # noqa: F401 (pytestmark: the skip without chromium)
    CHROMIUM,
    CHROMIUM_ARGS,
    pytestmark,
    record_console_errors,
    record_errors,
)

CRASH, PAYMENT = "the app crashes as soon as I open it", "payment fails at checkout"
SIGNAL, LOGIN = "no signal in Lviv", "login codes never arrive"
# Each incident: its title, when it opened (minutes before the first's minute) and its links: conversation,
# channel, text, seconds after it opened. The crash spans two minutes (1 then 2), the payment two (1 and 1).
SEEDS = {
    "inc-login": (LOGIN, -6, [("c-l1", "email", LOGIN, 5)]),
    "inc-signal": (SIGNAL, -3, [("c-s1", "sms", "no signal in Lviv since noon", 5)]),
    "inc-crash": (CRASH, 0, [("c-a1", "chat", CRASH, 5), ("c-a2", "email", "app crashes when opened", 65),
                             ("c-a3", "chat", "the app keeps crashing on start", 70)]),
    "inc-payment": (PAYMENT, 6, [("c-b1", "whatsapp", PAYMENT, 5), ("c-b2", "chat", "payment failed twice", 65)]),
}


async def seed(names, seeds: dict, first: datetime) -> None:
    """Open each incident `offset` minutes after `first` and link its conversations, through the IncidentStore."""
    client = create_client(names.infra.mongo_url)
    try:
        store = IncidentStore(client[names.namespace])
        for incident_id, (title, offset, links) in seeds.items():
            opened = first + timedelta(minutes=offset)
            assert await store.opened(incident_id, WORKSPACE, title, opened)
            for conversation_id, channel, text, after in links:
                assert await store.link(incident_id, WORKSPACE, conversation_id, channel, f"m-{conversation_id}", text,
                                        opened + timedelta(seconds=after))
    finally:
        await client.close()


async def incident(assist, incident_id: str) -> dict:
    answer = await assist.get(f"/v1/incidents/{incident_id}", headers=auth())
    assert answer.status == 200, await answer.text()
    return await answer.json()


async def test_a_supervisor_confirms_merges_dismisses_and_resolves_incidents(names):
    # Whole minutes, so each link's minute is known: opened 18, 15, 12 and 6 minutes ago.
    first = datetime.now(UTC).replace(second=0, microsecond=0) - timedelta(minutes=12)
    await seed(names, SEEDS, first)
    async with serve(create_app(names.settings(AssistSettings))) as assist, async_playwright() as playwright:
        base = str(assist.make_url("")).rstrip("/")
        browser = await playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True)
        errors: list[str] = []
        try:
            page = await (await browser.new_context(viewport={"width": 1280, "height": 900})).new_page()
            record_errors(page, errors, "incidents")
            record_console_errors(page, errors, "incidents")
            await page.goto(f"{base}/incidents")

            # A wrong key is refused with the service's words; the right one shows the active incidents, newest first.
            await expect(page.locator("#token")).to_be_focused()
            await page.fill("#token", "not-a-key")
            await page.click("#sign-in")
            await expect(page.locator("#login-error")).to_contain_text("missing, unknown or expired API key")
            await page.fill("#token", API_KEY)
            await page.click("#sign-in")
            rows = page.locator("#incident-table tbody tr")
            await expect(page.locator("#list-status")).to_have_text("4 active incidents.")
            await expect(rows.locator("td:first-child")).to_have_text([PAYMENT, CRASH, SIGNAL, LOGIN])
            await expect(rows.nth(1).locator("td")).to_have_text(
                [CRASH, "Open", "3", "chat 2, email 1", re.compile(r"^1[23] min ago$")])  # 12 min and some seconds
            await assert_accessible(page)

            # The crash's detail: its links and its count per minute, focus on its title.
            await page.get_by_role("button", name=CRASH).click()
            await expect(page.locator("#detail-title")).to_have_text(CRASH)
            await expect(page.locator("#detail-title")).to_be_focused()
            await expect(rows.nth(1)).to_have_attribute("aria-current", "true")
            links = page.locator("#links-table tbody tr")
            await expect(links.locator("td:first-child")).to_have_text(["c-a1", "c-a2", "c-a3"])
            await expect(links.nth(1).locator("td").nth(1)).to_have_text("email")
            await expect(links.nth(1).locator("td").nth(2)).to_have_text("app crashes when opened")
            await expect(page.locator("#timeline-table tbody tr .count")).to_have_text(["1", "2"])
            await assert_accessible(page)

            # Confirmed by the page; the API agrees, and Confirm is gone (a confirmed one cannot be confirmed again).
            await page.click("#confirm")
            await expect(page.locator("#action-status")).to_contain_text("is confirmed")
            await expect(page.locator("#detail-status")).to_have_text("Confirmed")
            await expect(page.locator("#confirm")).to_be_hidden()
            assert (await incident(assist, "inc-crash"))["status"] == "confirmed"

            # Someone else confirms the payment incident behind the page's back: the page's Confirm gets a 409,
            # said by the buttons.
            await page.get_by_role("button", name=PAYMENT).click()
            await expect(page.locator("#detail-title")).to_have_text(PAYMENT)
            confirmed = await assist.post("/v1/incidents/inc-payment/confirm", headers=auth())
            assert confirmed.status == 200
            await page.click("#confirm")
            await expect(page.locator("#action-error")).to_have_text(
                "the incident is confirmed: only one that is open can become confirmed")

            # Dismissing asks first: Keep it keeps it; Dismiss dismisses it (it leaves the active list).
            await page.get_by_role("button", name=SIGNAL).click()
            await expect(page.locator("#detail-title")).to_have_text(SIGNAL)
            await page.click("#dismiss")
            await expect(page.locator("#dismiss-dialog")).to_be_visible()
            await expect(page.get_by_role("button", name="Keep it")).to_be_focused()
            await page.get_by_role("button", name="Keep it").click()
            await expect(page.locator("#dismiss-dialog")).to_be_hidden()
            assert (await incident(assist, "inc-signal"))["status"] == "open"
            await page.click("#dismiss")
            await page.click("#dismiss-confirm")
            await expect(page.locator("#action-status")).to_have_text(f"“{SIGNAL}” was dismissed.")
            await expect(rows.locator("td:first-child")).to_have_text([PAYMENT, CRASH, LOGIN])
            assert (await incident(assist, "inc-signal"))["status"] == "dismissed"

            # Merging picks one of the other active incidents; one dismissed meanwhile is a 409 said by the picker.
            await page.get_by_role("button", name=PAYMENT).click()
            await expect(page.locator("#detail-title")).to_have_text(PAYMENT)
            await page.click("#merge")
            await expect(page.locator("#merge-dialog")).to_be_visible()
            await expect(page.locator("#merge-into option")).to_have_text(
                [f"{CRASH} (3 conversations)", f"{LOGIN} (1 conversation)"])
            await expect(page.locator("#merge-into")).to_be_focused()
            await assert_accessible(page)
            await page.select_option("#merge-into", "inc-login")
            assert (await assist.post("/v1/incidents/inc-login/dismiss", headers=auth())).status == 200
            await page.click("#merge-submit")
            await expect(page.locator("#into-error")).to_have_text("the incident to merge into is dismissed")
            await expect(page.locator("#merge-into")).to_have_attribute("aria-invalid", "true")
            await expect(page.locator("#merge-into")).to_be_focused()
            await expect(page.locator("#merge-error")).to_be_empty()
            await page.keyboard.press("Escape")  # left without merging: focus back on the button that opened it
            await expect(page.locator("#merge-dialog")).to_be_hidden()
            await expect(page.locator("#merge")).to_be_focused()
            assert (await incident(assist, "inc-payment"))["status"] == "confirmed"

            # The payment incident is part of the crash: merged, the crash holds all five conversations.
            await page.click("#merge")
            await expect(page.locator("#merge-into option")).to_have_text([f"{CRASH} (3 conversations)"])
            await expect(page.locator("#merge-into")).not_to_have_attribute("aria-invalid", "true")
            await page.click("#merge-submit")
            await expect(page.locator("#detail-title")).to_have_text(CRASH)
            await expect(page.locator("#action-status")).to_have_text(
                f"“{PAYMENT}” was merged into “{CRASH}”: 5 conversations now.")
            await expect(page.locator("#detail-conversations")).to_have_text("5")
            await expect(links.locator("td:first-child")).to_have_text(["c-a1", "c-a2", "c-a3", "c-b1", "c-b2"])
            await expect(rows.locator("td").nth(2)).to_have_text("5")
            await expect(rows.locator("td:first-child")).to_have_text([CRASH])
            await expect(page.locator("#merge")).to_be_hidden()  # no other active incident to merge into
            merged = await incident(assist, "inc-payment")
            assert (merged["status"], merged["merged_into"]) == ("merged", "inc-crash")
            crash = await incident(assist, "inc-crash")
            assert crash["conversations"] == 5
            assert crash["channels"] == {"chat": 3, "email": 1, "whatsapp": 1}

            # Resolved with a reply to every linked conversation: the dialog takes the focus, the API's answer
            # says resolved, and the active list is empty.
            await page.click("#resolve")
            await expect(page.locator("#resolve-dialog")).to_be_visible()
            await expect(page.locator("#reply")).to_be_focused()
            await assert_accessible(page)
            await page.fill("#reply", "Fixed: please update the app.")
            await page.check("#resolve-conversations")
            async with page.expect_response(lambda r: r.url.endswith("/v1/incidents/inc-crash/resolve")) as answer:
                await page.click("#resolve-submit")
            assert (await (await answer.value).json())["status"] == "resolved"
            await expect(page.locator("#resolve-dialog")).to_be_hidden()
            await expect(page.locator("#action-status")).to_have_text(f"“{CRASH}” is resolved.")
            await expect(page.locator("#detail-status")).to_have_text("Resolved")
            await expect(page.locator("#detail-actions")).to_be_hidden()
            await expect(page.locator("#list-status")).to_have_text("No active incidents.")
            await expect(rows).to_have_count(0)
            assert (await incident(assist, "inc-crash"))["status"] == "resolved"

            # The filter shows the others: the resolved one, and every state.
            await page.select_option("#filter", "resolved")
            await expect(rows.locator("td:first-child")).to_have_text([CRASH])
            await expect(rows.locator("td").nth(1)).to_have_text("Resolved")
            await page.select_option("#filter", "")
            await expect(rows.locator("td:nth-child(2)")).to_have_text(["Merged", "Resolved", "Dismissed", "Dismissed"])
            await assert_accessible(page)

            # A new incident shows by itself: the page refreshes every few seconds.
            await seed(names, {"inc-new": ("the website is down", 11, [("c-n1", "chat", "the website is down", 5)])},
                       first)
            await expect(rows.locator("td:first-child").first).to_have_text("the website is down", timeout=15_000)
            assert not errors, errors
        finally:
            await browser.close()
