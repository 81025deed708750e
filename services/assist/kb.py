"""The knowledge base: articles per workspace (title, Markdown body, language, tags, published or
draft), stored in `kb_articles` (owned by assist). Every change bumps the workspace's version in
`kb_versions`, so each replica knows when its in-memory search index is stale."""

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator
from pymongo import ASCENDING, DESCENDING, ReturnDocument
from pymongo.asynchronous.database import AsyncDatabase

from shared.models import Label, Wire, new_id, utcnow
from shared.web import Timestamp

# The languages the search analyses (services/assist/search/text.py): English, Russian, Ukrainian.
Language = Literal["en", "ru", "uk"]
LANGUAGES: tuple[str, ...] = ("en", "ru", "uk")
Status = Literal["published", "draft"]
MAX_BODY_CHARS = 50_000


class ArticleIn(Wire):
    """An article as a supervisor writes it."""

    # At least one printable character (the same explicit class as labels': see shared/models.py).
    title: str = Field(min_length=1, max_length=200, pattern=r"[^\x00-\x20\x7f-\x9f\u2028\u2029]")
    body: str = Field("", max_length=MAX_BODY_CHARS, description="Markdown")
    language: Language = "en"
    tags: list[Label] = Field(default_factory=list, max_length=20, description="Compared in lower case")
    status: Status = "draft"

    @field_validator("title")
    @classmethod
    def _one_line_title(cls, title: str) -> str:
        return " ".join(title.split())

    @field_validator("tags")
    @classmethod
    def _fold_tags(cls, tags: list[str]) -> list[str]:
        return list(dict.fromkeys(tag.lower() for tag in tags))


class ArticleOut(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: str
    title: str
    body: str
    language: Language
    tags: list[str]
    status: Status
    created_at: Timestamp
    updated_at: Timestamp

    @classmethod
    def of(cls, doc: dict[str, Any]) -> "ArticleOut":
        return cls(id=doc["_id"], title=doc["title"], body=doc["body"], language=doc["language"], tags=doc["tags"],
                   status=doc["status"], created_at=doc["created_at"], updated_at=doc["updated_at"])


class ArticleList(BaseModel):
    model_config = ConfigDict(extra="forbid")

    articles: list[ArticleOut]


class TooManyArticles(Exception):
    """The workspace holds its maximum of articles."""


class KnowledgeBase:
    """`kb_articles` and `kb_versions` (a counter per workspace, bumped by every change)."""

    def __init__(self, db: AsyncDatabase, max_articles: int = 5000) -> None:
        self.articles = db["kb_articles"]
        self.versions = db["kb_versions"]
        self.max_articles = max_articles

    async def ensure_indexes(self) -> None:
        await self.articles.create_index([("workspace_id", ASCENDING), ("status", ASCENDING),
                                          ("updated_at", DESCENDING)])

    async def version(self, workspace_id: str) -> int:
        doc = await self.versions.find_one({"_id": workspace_id})
        return int(doc["version"]) if doc else 0

    async def _bump(self, workspace_id: str) -> None:
        await self.versions.update_one({"_id": workspace_id}, {"$inc": {"version": 1}}, upsert=True)

    async def find(self, workspace_id: str, *, status: str | None = None, language: str | None = None) -> list[dict]:
        query: dict[str, Any] = {"workspace_id": workspace_id}
        if status:
            query["status"] = status
        if language:
            query["language"] = language
        return await self.articles.find(query).sort("updated_at", DESCENDING).to_list(None)

    async def get(self, workspace_id: str, article_id: str) -> dict | None:
        return await self.articles.find_one({"_id": article_id, "workspace_id": workspace_id})

    async def create(self, workspace_id: str, article: ArticleIn, now: datetime | None = None) -> dict:
        if await self.articles.count_documents({"workspace_id": workspace_id}) >= self.max_articles:
            raise TooManyArticles(f"a workspace holds at most {self.max_articles} articles")
        now = now or utcnow()
        doc = {"_id": new_id(), "workspace_id": workspace_id, **article.model_dump(), "created_at": now,
               "updated_at": now}
        await self.articles.insert_one(doc)
        await self._bump(workspace_id)
        return doc

    async def replace(self, workspace_id: str, article_id: str, article: ArticleIn) -> dict | None:
        doc = await self.articles.find_one_and_update(
            {"_id": article_id, "workspace_id": workspace_id},
            {"$set": {**article.model_dump(), "updated_at": utcnow()}}, return_document=ReturnDocument.AFTER)
        if doc is not None:
            await self._bump(workspace_id)
        return doc

    async def delete(self, workspace_id: str, article_id: str) -> bool:
        result = await self.articles.delete_one({"_id": article_id, "workspace_id": workspace_id})
        if result.deleted_count:
            await self._bump(workspace_id)
        return bool(result.deleted_count)
