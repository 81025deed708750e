"""One module per channel: how its traffic is verified, normalized and sent back out.

Each module exports a `ChannelPlugin` (see base.py): its webhook routes, its sender, the model of
its per-workspace credentials. Adding a channel is a module here plus a line in `PLUGINS`.
"""

from services.intake.channels import api, email, messenger, telegram, telephony, twilio, voice, webchat, whatsapp
from services.intake.channels.base import ChannelPlugin

PLUGINS: list[ChannelPlugin] = [
    api.PLUGIN,
    webchat.PLUGIN,
    email.PLUGIN,
    whatsapp.PLUGIN,
    messenger.PLUGIN,
    messenger.INSTAGRAM_PLUGIN,
    telegram.PLUGIN,
    twilio.SMS_PLUGIN,
    voice.PLUGIN,
    voice.VOICEMAIL_PLUGIN,
    telephony.PLUGIN,
]
