"""Web chat files: uploaded by the customer, stored in GridFS, downloadable from the agents service."""

import aiohttp

from tests.conftest import auth
from tests.service.helpers import running_apps


async def chat_session(apps) -> str:
    async with apps.intake.ws_connect("/v1/chat/ws?workspace=default") as ws:
        frame = await ws.receive_json(timeout=10)
        assert frame["type"] == "session"
        return frame["token"]


def upload_form(data: bytes, client_id: str = "c1", text: str = "my invoice") -> aiohttp.FormData:
    form = aiohttp.FormData()
    form.add_field("client_id", client_id)
    form.add_field("text", text)
    form.add_field("file", data, filename="invoice.pdf", content_type="application/pdf")
    return form


async def test_a_customer_file_reaches_the_desk_and_downloads(names):
    pdf = b"%PDF-1.4\n" + bytes(range(256)) * 40
    async with running_apps(names) as apps:
        await apps.put_agent("ann")
        desk = await apps.desk("ann")
        token = await chat_session(apps)
        response = await apps.intake.post(f"/v1/chat/messages?session={token}", data=upload_form(pdf))
        assert response.status == 202, await response.text()
        # The page retries an upload whose answer it lost: the same client_id stores nothing new.
        again = await apps.intake.post(f"/v1/chat/messages?session={token}", data=upload_form(pdf))
        assert (await again.json())["message_id"] == (await response.json())["message_id"]

        assigned = await desk.next_frame()
        [message] = assigned["messages"]
        assert message["text"] == "my invoice"
        [attachment] = message["attachments"]
        assert (attachment["filename"], attachment["content_type"], attachment["size"]) == ("invoice.pdf", "application/pdf", len(pdf))

        download = await apps.agents.get(f"/v1/attachments/{attachment['attachment_id']}", headers=auth())
        assert download.status == 200
        assert await download.read() == pdf
        assert download.headers["Content-Disposition"] == 'attachment; filename="invoice.pdf"'
        elsewhere = await apps.agents.get(f"/v1/attachments/{attachment['attachment_id']}", headers=auth("other-key"))
        assert elsewhere.status == 404


async def test_uploads_are_refused_clearly(names):
    async with running_apps(names, max_attachment_bytes=1000) as apps:
        token = await chat_session(apps)
        too_big = await apps.intake.post(f"/v1/chat/messages?session={token}", data=upload_form(b"x" * 1001))
        assert too_big.status == 413
        assert "over the 1000 byte limit" in (await too_big.json())["error"]["message"]

        no_session = await apps.intake.post("/v1/chat/messages", data=upload_form(b"x"))
        assert no_session.status == 401

        no_file = aiohttp.FormData()
        no_file.add_field("client_id", "c2")
        missing = await apps.intake.post(f"/v1/chat/messages?session={token}", data=no_file)
        assert missing.status == 400
        assert "file" in (await missing.json())["error"]["message"]
