"""Per-workspace web chat settings (the routing configuration's `webchat` section) as intake serves them
to the chat page and the widget, opening hours, and an email address left by the customer kept on the
contact (docs/webchat.md)."""

import asyncio

from tests.conftest import auth
from tests.service.helpers import running_apps
from tests.service.test_typing import Chat

ALWAYS_CLOSED = {"time_zone": "Europe/Kyiv", "weekly": {}}
SETTINGS = {"title": "Acme help", "greeting": "Hi from Acme!", "language": "uk", "accent_color": "#aa3300",
            "hours": ALWAYS_CLOSED}


async def settings_of(apps, workspace: str = "default"):
    return await apps.intake.get(f"/v1/chat/settings?workspace={workspace}")


async def test_the_chat_settings_come_from_the_routing_configuration(names):
    async with running_apps(names, webchat_settings_seconds=0.05) as apps:
        response = await settings_of(apps)
        assert response.status == 200
        assert response.headers["Access-Control-Allow-Origin"] == "*"  # the widget asks from customers' sites
        assert await response.json() == {"workspace_id": "default", "title": None, "greeting": None, "language": None,
                                          "accent_color": None, "open": True, "hours": None, "help_center_url": None}

        put = await apps.router.put("/v1/routing/config", json={"webchat": {"default": SETTINGS}}, headers=auth())
        assert put.status == 202, await put.text()
        async with asyncio.timeout(10):  # the cache's 50 ms, then the stored configuration
            while (body := await (await settings_of(apps)).json())["title"] is None:
                await asyncio.sleep(0.05)  # polling an HTTP view; the condition ends it
        assert body == {"workspace_id": "default", **SETTINGS, "open": False, "help_center_url": None}

        unknown = await settings_of(apps, "nobody")
        assert unknown.status == 404 and "unknown workspace" in (await unknown.json())["error"]["message"]


async def test_bad_settings_are_refused_by_the_router_with_the_reason(names):
    async with running_apps(names) as apps:
        for bad, reason in (({"accent_color": "red"}, "accent_color"),
                            ({"hours": {"time_zone": "Mars/Olympus", "weekly": {}}}, "unknown time zone"),
                            ({"hours": {"time_zone": "UTC", "weekly": {"mon": [{"start": "18:00", "end": "09:00"}]}}},
                             "must end after it starts")):
            response = await apps.router.put("/v1/routing/config", json={"webchat": {"default": bad}}, headers=auth())
            assert response.status in (400, 422), bad
            assert reason in await response.text(), (bad, await response.text())


async def test_an_email_left_in_the_chat_is_kept_on_the_contact(names):
    async with running_apps(names) as apps:
        await apps.put_agent("ann")  # the agents service stores a conversation once someone has it
        bad = await apps.intake.get("/v1/chat/ws?workspace=default&email=not-an-address")
        assert bad.status == 400 and "email" in (await bad.json())["error"]["message"]

        chat = Chat(await apps.intake.ws_connect("/v1/chat/ws?workspace=default&email=ann%40example.com"))
        session = await chat.next_frame()
        assert (await chat.next_frame())["type"] == "history"
        await chat.say("please write back", "e1")
        params = {"channel": "webchat", "thread_id": session["thread_id"]}
        async with asyncio.timeout(15):
            while not (found := (await (await apps.agents.get("/v1/conversations", params=params,
                                                             headers=auth())).json())["conversations"]):
                await asyncio.sleep(0.05)  # polling an HTTP view; the condition ends it
        contact = await (await apps.agents.get(f"/v1/contacts/{found[0]['contact_id']}", headers=auth())).json()
        assert contact["emails"] == ["ann@example.com"]


async def test_the_chat_links_to_the_workspace_help_center_where_the_deployment_has_one(names):
    async with running_apps(names, help_center_url="https://help.example.com/") as apps:
        body = await (await settings_of(apps)).json()
        assert body["help_center_url"] == "https://help.example.com/help/default"
