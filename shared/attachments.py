"""The attachment store: files that came with customers' messages, and files agents send, in MongoDB GridFS.

Intake writes the customers' files (their id derived from the message id and position, so a
provider's retry of the same delivery stores nothing twice); the agents service reads them, to let
the desk download, and writes the files agents upload for a reply (`out-<id>`,
services/agents/files.py), which intake's senders read to send them out.
"""

import re
import unicodedata
import uuid
from dataclasses import dataclass
from urllib.parse import quote

from gridfs import AsyncGridFSBucket, AsyncGridOut
from gridfs.errors import FileExists, NoFile
from pymongo.asynchronous.database import AsyncDatabase

from shared.models import Attachment

BUCKET = "attachments"
ATTACHMENT_NAMESPACE = uuid.UUID("0b6f2d52-7f0e-4c1e-9d0a-3f6a8e5c2b17")
OCTET_STREAM = "application/octet-stream"
MAX_CONTENT_TYPE_CHARS = 128  # Attachment.content_type's limit
MAX_FILENAME_CHARS = 256  # Attachment.filename's limit

# RFC 9110 media type: type "/" subtype *( OWS ";" OWS token "=" ( token / quoted-string ) ).
_TOKEN = r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+"
_QUOTED = r'"(?:[\t \x21\x23-\x5b\x5d-\x7e]|\\[\t \x21-\x7e])*"'
_MEDIA_TYPE = re.compile(rf"[ \t]*({_TOKEN})/({_TOKEN})[ \t]*")
_PARAMETER = re.compile(rf";[ \t]*({_TOKEN})=({_TOKEN}|{_QUOTED})[ \t]*")
# Removed from file names: controls (CR LF end a header), format characters (a right-to-left
# override makes "gpj.exe" look like "exe.jpg"), line separators, lone surrogates (undecodable bytes).
_UNSAFE_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Zl", "Zp"})
# RFC 8187 attr-char, besides letters and digits (which quote() always keeps).
_ATTR_CHARS = "!#$&+-.^_`|~"


def media_type(value: str | None) -> str:
    """A Content-Type fit to store and serve: type/subtype lowercased, then the parameters that are
    well-formed while they fit in 128 characters; octet-stream when there is no valid type at all.

    Whatever a customer's browser or a provider declared, what is stored can always be served back.
    """
    match = _MEDIA_TYPE.match(value or "")
    if match is None:
        return OCTET_STREAM
    result = f"{match[1]}/{match[2]}".lower()
    if len(result) > MAX_CONTENT_TYPE_CHARS:
        return OCTET_STREAM
    position = match.end()
    while (parameter := _PARAMETER.match(value, position)) is not None:
        longer = f"{result}; {parameter[1].lower()}={parameter[2]}"
        if len(longer) > MAX_CONTENT_TYPE_CHARS:
            break
        result, position = longer, parameter.end()
    return result


def safe_filename(name: str | None) -> str | None:
    """A file name without control, format or line-separator characters or a path, at most 256
    characters; None if nothing is left."""
    if name is None:
        return None
    kept = "".join("_" if ch in "/\\" else ch for ch in name if unicodedata.category(ch) not in _UNSAFE_CATEGORIES)
    return kept.strip()[:MAX_FILENAME_CHARS] or None


def content_disposition(filename: str | None) -> str:
    """`attachment` with the file name: an ASCII `filename` every client reads (no quotes, backslashes,
    CR/LF or non-ASCII), plus RFC 6266 `filename*=UTF-8''...` when that had to change the name."""
    name = safe_filename(filename) or "attachment"
    fallback = "".join(ch if " " <= ch <= "~" and ch not in '"\\%' else "_" for ch in name)
    header = f'attachment; filename="{fallback}"'
    if fallback != name:
        header += f"; filename*=UTF-8''{quote(name, safe=_ATTR_CHARS)}"
    return header


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
        """Store the bytes under `attachment_id`; storing the same id again keeps the first.

        The type and name are made safe here, for every channel: each can be served back as it is stored.
        """
        content_type, filename = media_type(content_type), safe_filename(filename)
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
    # Made safe again on the way out: files stored before put() did so may hold anything.
    content_type = (stored.metadata or {}).get("content_type")
    return Attachment(
        attachment_id=stored._id,
        filename=safe_filename(stored.filename if isinstance(stored.filename, str) else None),
        content_type=media_type(content_type if isinstance(content_type, str) else None),
        size=stored.length,
    )
