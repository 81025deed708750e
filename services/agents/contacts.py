"""One contact across channels: the same email address or phone number is the same person.

A contact has identities: its address on each channel (`telegram:12345`), its email addresses
and phone numbers. `contact_identities` maps each identity to the contact (`_id` is
`<workspace>:<kind>:<value>`, unique), so finding a contact is one indexed read per batch.

Resolving an incoming contact: its channel address first, then its email, then its phone; the
first identity already known names the contact. A new person gets an id derived from their
channel address, so a redelivered assignment resolves to the same contact. Two contacts already
known under different identities are not merged automatically (that is an agent's call).
"""

import re
import uuid
from dataclasses import dataclass

from pymongo import UpdateOne
from pymongo.asynchronous.collection import AsyncCollection

from shared.models import Contact, utcnow

CONTACT_NAMESPACE = uuid.UUID("3d0c9a5e-2f4b-4b7e-9c61-7d2a6e1f8b90")


def normalize_email(email: str | None) -> str | None:
    return email.strip().lower() if email and "@" in email else None


def normalize_phone(phone: str | None) -> str | None:
    """E.164-style: a leading + and digits only (`+1 (415) 555-0100` -> `+14155550100`)."""
    if not phone:
        return None
    digits = re.sub(r"\D", "", phone)
    return f"+{digits}" if len(digits) >= 6 else None


@dataclass(frozen=True)
class Identities:
    workspace_id: str
    channel: str
    contact: Contact

    @property
    def channel_key(self) -> str:
        return f"{self.workspace_id}:{self.channel}:{self.contact.id}"

    @property
    def email(self) -> str | None:
        return normalize_email(self.contact.email)

    @property
    def phone(self) -> str | None:
        return normalize_phone(self.contact.phone)

    def keys(self) -> list[str]:
        """Identity keys in the order they decide the contact."""
        keys = [self.channel_key]
        if self.email:
            keys.append(f"{self.workspace_id}:email:{self.email}")
        if self.phone:
            keys.append(f"{self.workspace_id}:phone:{self.phone}")
        return keys

    def new_contact_id(self) -> str:
        return uuid.uuid5(CONTACT_NAMESPACE, self.channel_key).hex


class ContactBook:
    """Writes `contacts` and `contact_identities` (owned by the agents service)."""

    def __init__(self, contacts: AsyncCollection, identities: AsyncCollection) -> None:
        self.contacts = contacts
        self.identities = identities

    async def resolve(self, people: list[Identities]) -> list[str]:
        """The contact id of each person (in order), creating and linking identities as needed."""
        contact_ids = await self.known_ids(people)
        if contact_ids:
            await self._link(people, contact_ids)
        return contact_ids

    async def known_ids(self, people: list[Identities]) -> list[str]:
        """The contact id each person resolves to (in order), writing nothing: a person not known yet
        gets the id resolve() will give it."""
        if not people:
            return []
        all_keys = sorted({key for person in people for key in person.keys()})
        known = {doc["_id"]: doc["contact_id"] for doc in await self.identities.find({"_id": {"$in": all_keys}}).to_list()}
        contact_ids = []
        for person in people:
            contact_id = next((known[k] for k in person.keys() if k in known), None) or person.new_contact_id()
            for key in person.keys():
                known.setdefault(key, contact_id)  # later people in this batch see this one
            contact_ids.append(contact_id)
        return contact_ids

    async def _link(self, people: list[Identities], contact_ids: list[str]) -> None:
        identity_ops, contact_ops = [], []
        now = utcnow()
        for person, contact_id in zip(people, contact_ids, strict=True):
            for key in person.keys():
                # $setOnInsert: an identity already linked keeps its contact.
                identity_ops.append(UpdateOne({"_id": key}, {"$setOnInsert": {"contact_id": contact_id, "workspace_id": person.workspace_id}}, upsert=True))
            additions: dict = {"identities": {"channel": person.channel, "address": person.contact.id}}
            if person.email:
                additions["emails"] = person.email
            if person.phone:
                additions["phones"] = person.phone
            update: dict = {
                "$addToSet": additions,
                "$setOnInsert": {"workspace_id": person.workspace_id, "created_at": now},
                "$set": {"last_seen_at": now},
            }
            if person.contact.name:
                update["$set"]["name"] = person.contact.name
            contact_ops.append(UpdateOne({"_id": contact_id}, update, upsert=True))
        await self.identities.bulk_write(identity_ops, ordered=False)
        await self.contacts.bulk_write(contact_ops, ordered=False)

    async def get(self, workspace_id: str, contact_id: str) -> dict | None:
        return await self.contacts.find_one({"_id": contact_id, "workspace_id": workspace_id})

    async def edit(self, contact: dict, name: str | None, attributes: dict[str, str], labels: list[str] | None) -> dict:
        """Set what the desk edited (the whole attributes map, merged by the caller); the contact after it."""
        changes: dict = {"attributes": attributes}
        if name is not None:
            changes["name"] = name
        if labels is not None:
            changes["labels"] = sorted(set(labels))
        await self.contacts.update_one({"_id": contact["_id"]}, {"$set": changes})
        return {**contact, **changes}
