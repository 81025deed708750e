"""What the CSAT service tests share: turning surveys on, resolving, reading the survey back, the clock moved on."""

import asyncio
from collections.abc import Callable
from datetime import timedelta

from pymongo import AsyncMongoClient

from shared.models import utcnow
from tests.conftest import Names, auth
from tests.service.helpers import Apps, Desk


async def enable_csat(apps: Apps, **settings) -> None:
    """Surveys on for the default workspace (the routing configuration's `csat` section)."""
    response = await apps.router.put("/v1/routing/config", json={"csat": {"default": settings}}, headers=auth())
    assert response.status == 202, await response.text()


async def assigned_to(desk: Desk) -> dict:
    """The next conversation assigned to this desk."""
    frames = await desk.frames_until(lambda f: any(x["type"] == "conversation.assigned" for x in f))
    return next(x for x in frames if x["type"] == "conversation.assigned")["conversation"]


async def resolve(apps: Apps, conversation_id: str) -> dict:
    response = await apps.agents.post(f"/v1/conversations/{conversation_id}/resolve", headers=auth())
    assert response.status == 200, await response.text()
    return await response.json()


async def conversation(apps: Apps, conversation_id: str) -> dict:
    response = await apps.agents.get(f"/v1/conversations/{conversation_id}", headers=auth())
    assert response.status == 200, await response.text()
    return await response.json()


async def conversation_where(apps: Apps, conversation_id: str, done: Callable[[dict], bool], timeout: float = 15) -> dict:
    """Poll the conversation until `done` holds (the condition, not the pause, ends the wait)."""
    async with asyncio.timeout(timeout):
        while True:
            body = await conversation(apps, conversation_id)
            if done(body):
                return body
            await asyncio.sleep(0.05)


async def conversations_of(apps: Apps, channel: str, thread_id: str) -> list[dict]:
    response = await apps.agents.get("/v1/conversations", params={"channel": channel, "thread_id": thread_id},
                                     headers=auth())
    assert response.status == 200, await response.text()
    return (await response.json())["conversations"]


async def answer_api(apps: Apps, body: dict, expected: int) -> dict:
    response = await apps.agents.post("/v1/csat/answers", json=body, headers=auth())
    assert response.status == expected, await response.text()
    return await response.json()


async def close_survey(names: Names, conversation_id: str) -> None:
    """Move the survey's window into the past: the clock, not a sleep, makes the next answer late."""
    client = AsyncMongoClient(names.infra.mongo_url, tz_aware=True)
    try:
        result = await client[names.namespace]["conversations"].update_one(
            {"_id": conversation_id}, {"$set": {"csat.expires_at": utcnow() - timedelta(seconds=1)}})
        assert result.modified_count == 1
    finally:
        await client.close()
