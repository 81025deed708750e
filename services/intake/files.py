"""Files out, fetched by whoever must show them: the customer's chat page, or a provider (WhatsApp,
Messenger, Twilio MMS) that takes media by URL. Each link is signed (itsdangerous, with the services'
token secret and a salt of its own) and expires after INTAKE_FILE_LINK_HOURS: it names the workspace
and the file, so nothing else is reachable with it, and nobody needs a key to follow it.
"""

from aiohttp import web
from itsdangerous import BadData, SignatureExpired, URLSafeTimedSerializer

from services.intake.settings import IntakeSettings
from shared.attachments import StoredFile, content_disposition
from shared.web import Answer, Operation, header_parameter, http_error, path_parameter

FILE_LINK_SALT = "switchyard.file-link.v1"
PATH = "/v1/files/{token}"
TOKEN = path_parameter("token", "The signed link's token (from a reply's attachment `url`)")


def _serializer(settings: IntakeSettings) -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(settings.token_secret, salt=FILE_LINK_SALT)


def file_link(settings: IntakeSettings, workspace_id: str, attachment_id: str, *, absolute: bool = False) -> str:
    """The signed download link of a stored file: relative for the chat page, absolute for a provider."""
    path = PATH.format(token=_serializer(settings).dumps([workspace_id, attachment_id]))
    return settings.public_url.rstrip("/") + path if absolute else path


def read_link(settings: IntakeSettings, token: str) -> tuple[str, str]:
    """(workspace, attachment id) of a link's token; a JSON 410 when it expired, 403 when it is not ours."""
    try:
        workspace_id, attachment_id = _serializer(settings).loads(token, max_age=int(settings.file_link_hours * 3600))
    except SignatureExpired:
        raise http_error(web.HTTPGone, "this file link has expired") from None
    except (BadData, ValueError, TypeError):
        raise http_error(web.HTTPForbidden, "this file link is not valid: it was altered or forged") from None
    return str(workspace_id), str(attachment_id)


def serve(stored: StoredFile) -> web.Response:
    # Served as a download, never rendered on this origin (the chat page's session lives here).
    return web.Response(body=stored.data, headers={
        "Content-Type": stored.attachment.content_type,
        "Content-Disposition": content_disposition(stored.attachment.filename),
        "X-Content-Type-Options": "nosniff",
        "Content-Security-Policy": "sandbox",
    })


OPERATIONS = [
    Operation("GET", PATH, "Download a file an agent sent (a signed, expiring link; no key)", (
        Answer(200, "The file, with the type it was stored with", media_type="*/*",
               schema={"description": "The file's bytes"},
               headers=(header_parameter("Content-Disposition", "attachment, with the file's name", required=True),)),
    ), parameters=(TOKEN,), errors=(403, 404, 410), public=True),
]
