"""The attachment store: files that came with customers' messages, in MongoDB GridFS.

Intake writes (it owns the `attachments` bucket); the agents service reads, to let the desk
download. An attachment's id is derived from its message id and position, so a provider's retry
of the same delivery stores nothing twice.
"""

import uuid
from dataclasses import dataclass

from gridfs import AsyncGridFSBucket, AsyncGridOut
from gridfs.errors import FileExists, NoFile
from pymongo.asynchronous.database import AsyncDatabase

from shared.models import Attachment

BUCKET = "attachments"
ATTACHMENT_NAMESPACE = uuid.UUID("0b6f2d52-7f0e-4c1e-9d0a-3f6a8e5c2b17")


def attachment_id_for(message_id: str, index: int) -> str:
    return uuid.uuid5(ATTACHMENT_NAMESPACE, f"{message_id}:{index}").hex


@dataclass(frozen=True)
class StoredFile:
    attachment: Attachment
    workspace_id: str
    data: bytes


class AttachmentStore:
    def __init__(self, db: AsyncDatabase) -> None:
        self.bucket = AsyncGridFSBucket(db, bucket_name=BUCKET)

    async def put(
        self, workspace_id: str, attachment_id: str, data: bytes, *, filename: str | None, content_type: str
    ) -> Attachment:
        """Store the bytes under `attachment_id`; storing the same id again keeps the first."""
        metadata = {"workspace_id": workspace_id, "content_type": content_type}
        try:
            await self.bucket.upload_from_stream_with_id(
                attachment_id, filename or "attachment", data, metadata=metadata
            )
        except FileExists:
            pass  # a provider's retry: the file is already here
        return Attachment(attachment_id=attachment_id, filename=filename, content_type=content_type, size=len(data))

    async def get(self, workspace_id: str, attachment_id: str) -> StoredFile | None:
        """The file, if it exists in this workspace."""
        try:
            stream = await self.bucket.open_download_stream(attachment_id)
        except NoFile:
            return None
        if (stream.metadata or {}).get("workspace_id") != workspace_id:
            return None
        data = await stream.read()
        return StoredFile(_described(stream), workspace_id, data)

    async def find(self, workspace_id: str, attachment_id: str) -> Attachment | None:
        """What is stored under `attachment_id` in this workspace (not the bytes), or None."""
        async for stored in self.bucket.find({"_id": attachment_id}, limit=1):
            if (stored.metadata or {}).get("workspace_id") == workspace_id:
                return _described(stored)
        return None


def _described(stored: AsyncGridOut) -> Attachment:
    return Attachment(
        attachment_id=stored._id,
        filename=stored.filename,
        content_type=(stored.metadata or {}).get("content_type", "application/octet-stream"),
        size=stored.length,
    )
