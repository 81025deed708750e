"""Fixtures the service tests share."""

import pytest

from services.reporting.store import ReportStore
from shared.mongo import create_client
from tests.conftest import Names
from tests.unit.test_reporting_day import SETTINGS


@pytest.fixture
async def store(names: Names):
    """A ReportStore on the real database, in the test's own namespace, with the scripted day's settings."""
    client = create_client(names.infra.mongo_url)
    store = ReportStore(client[names.namespace], SETTINGS)
    await store.ensure_indexes()
    yield store
    await client.close()
