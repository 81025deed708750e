"""`python -m services.reporting.recompute`: every report figure again from the stored events.

For a changed metric definition or routing configuration (business hours): the raw events stay
in `report_events`, so conversations, agents' time and every rollup are refolded from them. Stop
the reporting service first (the rollups have one writer); it reads the same settings
(REPORTING_MONGO_URL or MONGO_URL, MONGO_DB).
"""

import asyncio

from services.reporting.settings import ReportingSettings
from services.reporting.store import close_clients, open_clients, store_of


async def recompute(settings: ReportingSettings) -> int:
    clients = open_clients(settings)
    try:
        store = store_of(settings, clients)
        await store.ensure_indexes()
        return await store.recompute_all()
    finally:
        await close_clients(clients)


def main() -> None:
    refolded = asyncio.run(recompute(ReportingSettings()))
    print(f"recomputed every report figure from the stored events ({refolded} conversations)")


if __name__ == "__main__":
    main()
