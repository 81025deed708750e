"""Files out: an agent uploads a file to a conversation (POST /v1/conversations/{id}/attachments), then
sends a reply naming it (`attachments: [attachment_id]`). Stored in the same attachment store as the
customers' files (shared/attachments.py); intake's sender for the channel carries it out.

Only channels whose sender can carry a file take one: anywhere else the upload and the reply are a 422
naming the channel, so an agent never believes a file went out that could not.
"""

from aiohttp import web

from shared.attachments import AttachmentStore
from shared.models import Attachment, new_id
from shared.web import PayloadTooLarge, http_error, read_form

# The channels whose intake sender sends files: web chat (a signed download link in the reply frame),
# email (MIME parts), Telegram (sendDocument / sendPhoto, multipart), WhatsApp and Messenger (media by a
# signed link), Twilio SMS (MMS MediaUrl, the same link). Not voice, the API channel or Instagram.
FILE_CHANNELS = ("webchat", "email", "telegram", "whatsapp", "messenger", "sms")
# The upload form as /openapi.json declares it (store_upload reads the same).
UPLOAD_FORM = {
    "type": "object",
    # No `type` on the file: any bytes are a file (a part that looks like JSON is one too).
    "properties": {"file": {"contentMediaType": "application/octet-stream",
                            "description": "The file (its part's filename and type are kept)"}},
    "required": ["file"],
    "additionalProperties": False,  # another part is ignored; a malformed one is a 400
}


def check_channel_carries_files(channel: str) -> None:
    if channel not in FILE_CHANNELS:
        raise http_error(web.HTTPUnprocessableEntity,
                         f"the {channel} channel cannot carry files: only {', '.join(FILE_CHANNELS)} do",
                         channel=channel)


async def store_upload(request: web.Request, store: AttachmentStore, workspace_id: str, limit: int) -> Attachment:
    """The request's `file` part stored under a new id; a JSON 400/413/415/422 when the form is not one."""
    form = await read_form(request, limit + 64 * 1024)  # the file plus room for the form around it
    upload = form.files.get("file")
    if upload is None:
        raise http_error(web.HTTPUnprocessableEntity, "the form has no file field named 'file'", parameter="file")
    if len(upload.data) > limit:
        raise http_error(PayloadTooLarge, f"the file is {len(upload.data)} bytes, over the {limit} byte limit")
    return await store.put(workspace_id, f"out-{new_id()}", upload.data, filename=upload.filename or "file",
                           content_type=upload.content_type)


async def attachments_named(store: AttachmentStore, workspace_id: str, ids: list[str]) -> list[Attachment]:
    """The stored files a reply names, in its order; a 422 naming the first that is not in this workspace."""
    found = []
    for attachment_id in ids:
        attachment = await store.find(workspace_id, attachment_id)
        if attachment is None:
            raise http_error(web.HTTPUnprocessableEntity, f"attachment {attachment_id!r} does not exist",
                             parameter="attachments")
        found.append(attachment)
    return found
