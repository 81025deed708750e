"""Each workspace's search index, kept in memory and rebuilt when its articles change.

`kb_versions` says when they changed (every write bumps the workspace's counter): a search reads
the counter (one small read) and rebuilds the index if it is older, reusing the embeddings of the
passages that did not change, in a thread so the event loop keeps serving. At most `capacity`
workspaces are kept; the least recently searched go first."""

import asyncio
from collections import OrderedDict
from dataclasses import dataclass

from services.assist.kb import KnowledgeBase
from services.assist.search.index import Article, Hit, KnowledgeIndex
from services.assist.search.text import Language


@dataclass
class CachedIndex:
    version: int
    index: KnowledgeIndex
    articles: dict[str, dict]  # id -> the stored article (title, body, language, tags)


class KnowledgeLibrary:
    """The published articles of every workspace, searchable."""

    def __init__(self, kb: KnowledgeBase, capacity: int = 200) -> None:
        self.kb = kb
        self.capacity = capacity
        self._cache: OrderedDict[str, CachedIndex] = OrderedDict()
        self._locks: dict[str, asyncio.Lock] = {}

    async def search(self, workspace_id: str, query: str, language: Language | None = None,
                     limit: int = 3) -> list[tuple[Hit, dict]]:
        """The best published articles for a query, best first, each with its stored document."""
        cached = await self._current(workspace_id)
        hits = await asyncio.to_thread(cached.index.search, query, language, limit)
        return [(hit, cached.articles[hit.article_id]) for hit in hits]

    async def _current(self, workspace_id: str) -> CachedIndex:
        version = await self.kb.version(workspace_id)
        cached = self._cache.get(workspace_id)
        if cached is None or cached.version != version:
            async with self._locks.setdefault(workspace_id, asyncio.Lock()):
                cached = self._cache.get(workspace_id)
                if cached is None or cached.version != version:
                    cached = await self._build(workspace_id, version, cached)
        self._cache[workspace_id] = cached
        self._cache.move_to_end(workspace_id)
        while len(self._cache) > self.capacity:
            evicted, _ = self._cache.popitem(last=False)
            self._locks.pop(evicted, None)
        return cached

    async def _build(self, workspace_id: str, version: int, previous: CachedIndex | None) -> CachedIndex:
        # Read after the version: a write landing meanwhile bumps it again, and the next search rebuilds.
        docs = await self.kb.find(workspace_id, status="published")
        articles = [Article(doc["_id"], doc["title"], doc["body"], doc["language"], tuple(doc["tags"])) for doc in docs]
        if previous is None:
            index = await asyncio.to_thread(KnowledgeIndex, articles)
        else:
            index = await asyncio.to_thread(previous.index.rebuilt, articles)
        return CachedIndex(version, index, {doc["_id"]: doc for doc in docs})
