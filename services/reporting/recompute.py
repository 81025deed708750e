"""`python -m services.reporting.recompute`: every report figure again from the stored events.

For a changed metric definition or routing configuration (business hours): the raw events stay
in `report_events`, so conversations, agents' time and every rollup are refolded from them. Stop
the reporting service first (the rollups have one writer); it reads the same settings
(REPORTING_MONGO_URL or MONGO_URL, MONGO_DB).
"""

import asyncio

from services.reporting.settings import ReportingSettings
from services.reporting.store import ReportStore
from shared.mongo import create_client


async def recompute(settings: ReportingSettings) -> int:
    mongo = create_client(settings.mongo_url)
    config = create_client(settings.config_mongo_url) if settings.config_mongo_url not in (None, settings.mongo_url) else mongo
    try:
        store = ReportStore(mongo[settings.mongo_db], config_db=config[settings.mongo_db])
        await store.ensure_indexes()
        return await store.recompute_all()
    finally:
        await mongo.close()
        if config is not mongo:
            await config.close()


def main() -> None:
    refolded = asyncio.run(recompute(ReportingSettings()))
    print(f"recomputed every report figure from the stored events ({refolded} conversations)")


if __name__ == "__main__":
    main()
