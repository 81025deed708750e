"""The transfer picker's queues: GET /v1/queues lists the routing configuration's queues, for
supervisors and agents alike, and follows a configuration put through the router's API."""

from tests.conftest import auth
from tests.service.helpers import running_apps
from tests.service.test_roles import agent_token, bearer


async def test_the_queues_follow_the_routing_configuration(names):
    async with running_apps(names) as apps:
        await apps.put_agent("ann")
        # Nothing stored yet: the router runs on its default, one queue.
        response = await apps.agents.get("/v1/queues", headers=auth())
        assert response.status == 200, await response.text()
        assert await response.json() == {"queues": [{"name": "default", "mode": "push"}]}

        config = {"queues": [{"name": "tier2", "mode": "offer"}, {"name": "billing"}, {"name": "default"}]}
        response = await apps.router.put("/v1/routing/config", json=config, headers=auth())
        assert response.status in (200, 202), await response.text()
        ann = bearer(await agent_token(apps, "ann"))
        listed = await (await apps.agents.get("/v1/queues", headers=ann)).json()  # an agent's token may list them
        assert listed == {"queues": [{"name": "billing", "mode": "push"}, {"name": "default", "mode": "push"},
                                     {"name": "tier2", "mode": "offer"}]}
        assert (await apps.agents.get("/v1/queues")).status == 401
