"""The wallboard's incidents in a real browser (Debian's chromium) over the whole stack, reporting included.

An incident assist announces while the board is open (published as assist publishes it, on the stack's
broker) comes up first on the board, in its alert panel, with its title, status, count, channels and
how long since it opened; the alert region tells screen readers once, not again when it grows or is
confirmed; once resolved the panel is gone. axe-core finds nothing serious before, with and after it.
"""

import re
import uuid
from datetime import timedelta

import pytest
from playwright.async_api import async_playwright, expect

from services.assist.incidents.watcher import incident_summary
from shared import events
from shared.models import RoutingEvent, utcnow
from tests.e2e.axe import assert_accessible
from tests.e2e.test_browser_supervisor import CHROMIUM, WAIT_MS, PageErrors, launch, open_page
from tests.service.test_reporting_incidents import announce, assist_broker

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(not CHROMIUM.exists(), reason=f"{CHROMIUM} not found (apt-get install chromium)"),
]


def announcement(kind: str, incident: dict, event_id: str) -> RoutingEvent:
    return RoutingEvent(event_id=event_id, type=kind, workspace_id="default", at=utcnow(),
                        details=incident_summary(incident))


async def test_an_incident_announced_while_the_board_is_open_shows_then_goes(stack, names, tmp_path):
    run = uuid.uuid4().hex[:8]
    title = f"Payment fails at checkout {run}"
    opened = utcnow() - timedelta(minutes=10)
    incident = {"_id": f"inc-{run}", "workspace_id": "default", "title": title, "status": "open", "conversations": 4,
                "channels": {"webchat": 3, "telegram": 1}, "opened_at": opened, "last_link_at": utcnow()}
    errors = PageErrors()
    async with async_playwright() as playwright, assist_broker(names) as broker:
        browser = await launch(playwright)
        try:
            page = await open_page(browser, stack.stack.url("reporting"), errors)
            panel = page.locator("#incidents-panel")
            alert = page.locator("#incident-alert")
            await expect(panel).to_be_hidden()  # nothing to show: nothing shown
            await expect(alert).to_have_text("")
            await assert_accessible(page)

            await announce(broker, announcement(events.INCIDENT_DETECTED, incident, f"{incident['_id']}:detected"),
                           mandatory=False)
            await expect(panel).to_be_visible(timeout=WAIT_MS)
            shown = page.locator(f"#incidents [data-incident-id='inc-{run}']")
            await expect(shown.locator("h3")).to_have_text(title)
            await expect(shown.locator(".status")).to_have_text("Open")
            await expect(shown.locator("[data-field='conversations']")).to_have_text("4 conversations")
            await expect(shown.locator("[data-field='channels']")).to_have_text("webchat 3, telegram 1")
            await expect(shown.locator("[data-field='age']")).to_have_text(re.compile(r"^1[01]:\d\d$"))
            await expect(page.locator("#incidents-count")).to_have_text("1")
            await expect(alert).to_have_text(f"New incident: {title} (4 conversations)")
            # First on the board, above the queues.
            assert await page.evaluate("""() => document.getElementById('incidents-panel')
                .compareDocumentPosition(document.getElementById('queues')) & Node.DOCUMENT_POSITION_FOLLOWING""")
            await assert_accessible(page)
            await page.screenshot(path=str(tmp_path / "incident.png"), full_page=True)

            grown = incident | {"status": "confirmed", "conversations": 9, "channels": {"webchat": 5, "telegram": 4}}
            await announce(broker, announcement(events.INCIDENT_UPDATED, grown, f"{incident['_id']}:confirmed"))
            await expect(shown.locator(".status")).to_have_text("Confirmed", timeout=WAIT_MS)
            await expect(shown.locator("[data-field='conversations']")).to_have_text("9 conversations")
            await expect(shown.locator("[data-field='channels']")).to_have_text("webchat 5, telegram 4")
            await expect(alert).to_have_text(f"New incident: {title} (4 conversations)")  # not announced again
            await assert_accessible(page)

            resolved = grown | {"status": "resolved"}
            await announce(broker, announcement(events.INCIDENT_RESOLVED, resolved, f"{incident['_id']}:resolved"))
            await expect(panel).to_be_hidden(timeout=WAIT_MS)
            await expect(page.locator("#incidents li")).to_have_count(0)
            await assert_accessible(page)
            assert errors == []
        finally:
            await browser.close()
