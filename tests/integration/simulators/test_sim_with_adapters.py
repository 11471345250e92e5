"""The real provider adapters, unchanged, against the simulators: the contract both sides rely on."""

from __future__ import annotations

import hashlib

import httpx
import pytest

from pipeline.dev.simulators import RunningSimulators
from pipeline.providers import build_mappers, build_provider
from pipeline.providers.base import Mapper, Provider
from pipeline.settings import HubSpotSettings, MailchimpSettings, ProvidersSettings, SalesforceSettings
from schemas.contact import Contact, ContactChange


def change(record_id: str, version: int, op: str = "upsert", contact_type: str = "lead") -> ContactChange:
    contact = Contact(
        id=record_id,
        email=f"{record_id}@example.com",
        first_name="Ann",
        last_name="Lee",
        company="Acme",
        contact_type=contact_type,
        subscribed=True,
    )
    times = {"source_ts_ms": 1, "captured_at_ms": 1}
    return ContactChange.model_validate(
        {"record_id": record_id, "op": op, "version": version, **times, "contact": contact}
    )


def _md5(email: str) -> str:
    return hashlib.md5(email.encode()).hexdigest()  # noqa: S324


def _new_email(item: ContactChange, email: str) -> ContactChange:
    assert item.contact is not None
    return item.model_copy(update={"contact": item.contact.model_copy(update={"email": email})})


def adapter_settings(sims: RunningSimulators) -> ProvidersSettings:
    salesforce = sims.salesforce.config
    return ProvidersSettings(
        hubspot=HubSpotSettings(base_url=sims.hubspot.base_url, token=sims.hubspot.config.token),
        salesforce=SalesforceSettings(
            base_url=sims.salesforce.base_url,
            client_id=salesforce.client_id,
            client_secret=salesforce.client_secret,
            username=salesforce.username,
            password=salesforce.password,
        ),
        mailchimp=MailchimpSettings(base_url=sims.mailchimp.base_url, api_key=sims.mailchimp.config.api_key),
    )


@pytest.mark.parametrize("provider", ["hubspot", "salesforce", "mailchimp"])
async def test_adapter_upserts_updates_and_deletes(sims: RunningSimulators, provider: str) -> None:
    """Each adapter's upsert, update and delete succeed, and the simulator ends up holding what was sent."""
    settings = adapter_settings(sims)
    mapper = build_mappers(settings)[provider]
    adapter = build_provider(settings, provider)
    try:
        created = await adapter.deliver([mapper(change("r1", 10)), mapper(change("r2", 11, contact_type="vendor"))])
        updated = await adapter.deliver([mapper(change("r1", 12))])
        deletes = [change("r2", 13, "delete", contact_type="vendor"), change("gone", 14, "delete")]
        deleted = await adapter.deliver([mapper(item) for item in deletes])
    finally:
        await adapter.aclose()
    assert all(result.ok for result in [*created, *updated, *deleted])
    async with httpx.AsyncClient(base_url=sims.by_name[provider].base_url) as client:
        records = (await client.get("/_sim/records")).json()["records"]
    assert (records["r1"]["version"], records["r1"]["archived"]) == ("12", False)
    assert records["r2"]["archived"] is True and "gone" not in records


def _batching_mailchimp(sims: RunningSimulators, **sim_config: object) -> tuple[Mapper, Provider]:
    """Mailchimp's mapper and adapter, batches run and polled every 0.05 s (``sim_config``: more)."""
    sims.mailchimp.reconfigure({"batch_delay_s": 0.05, **sim_config})
    settings = adapter_settings(sims)
    settings = settings.model_copy(update={"mailchimp": settings.mailchimp.model_copy(update={"batch_poll_s": 0.05})})
    return build_mappers(settings)["mailchimp"], build_provider(settings, "mailchimp")


async def test_mailchimp_moves_and_archives_through_batch_operations(sims: RunningSimulators) -> None:
    """Mailchimp's adapter sends three moves and three archives (guards, then DELETEs) as batch
    operations, fetches their results from the simulator's storage URL, and the audience ends up
    as the direct requests would leave it; the log shows no direct member request."""
    mapper, adapter = _batching_mailchimp(sims)
    try:
        created = await adapter.deliver([mapper(change(f"r{n}", 1)) for n in range(6)])
        after = sims.mailchimp.log.entries()[-1]["seq"]
        moves = [mapper(_new_email(change(f"r{n}", 2), f"new-r{n}@example.com")) for n in range(3)]
        moved = await adapter.deliver([record.model_copy(update={"previous_key": _md5(f"r{n}@example.com")})
                                       for n, record in enumerate(moves)])
        deleted = await adapter.deliver([mapper(change(f"r{n}", 3, "delete")) for n in range(3, 6)])
    finally:
        await adapter.aclose()
    assert all(result.ok for result in [*created, *moved, *deleted])
    held = sims.mailchimp.store.current_records()
    assert [held[f"r{n}"]["native_id"] for n in range(3)] == [_md5(f"new-r{n}@example.com") for n in range(3)]
    assert all(held[f"r{n}"]["archived"] for n in range(3, 6))
    log = sims.mailchimp.log.entries(after_seq=after)
    calls = [(r["method"], r["path"].rsplit("/", 1)[-1], r["operations"]) for r in log]
    assert [call for call in calls if call[1] != "batches"] == []
    posted = [call[2] for call in calls if call[0] == "POST"]
    assert posted == [{"PATCH": 3}, {"GET": 3}, {"DELETE": 3}]


async def test_mailchimp_subscribes_in_the_moves_batch_except_at_an_address_a_move_leaves(
    sims: RunningSimulators,
) -> None:
    """With the simulator running a batch's operations last first (Mailchimp promises no order), a
    delivery's batch subscribe rides in its moves' POST /batches, while the member taking the
    address a move leaves is subscribed after the moves: it ends live there, and the moved record
    at its new address."""
    mapper, adapter = _batching_mailchimp(sims, batch_operations_reversed=True)
    try:
        created = await adapter.deliver([mapper(change(f"r{n}", 1)) for n in range(3)])
        after = sims.mailchimp.log.entries()[-1]["seq"]
        moves = [mapper(_new_email(change(f"r{n}", 2), f"new-r{n}@example.com")) for n in range(3)]
        takes_r0s_address = mapper(_new_email(change("r6", 1), "r0@example.com"))
        upserted = await adapter.deliver([
            *(record.model_copy(update={"previous_key": _md5(f"r{n}@example.com")}) for n, record in enumerate(moves)),
            takes_r0s_address, mapper(change("r7", 1)),
        ])
    finally:
        await adapter.aclose()
    assert all(result.ok for result in [*created, *upserted])
    held = sims.mailchimp.store.current_records()
    assert (held["r6"]["native_id"], held["r6"]["archived"]) == (_md5("r0@example.com"), False)
    assert [held[f"r{n}"]["native_id"] for n in range(3)] == [_md5(f"new-r{n}@example.com") for n in range(3)]
    assert held["r7"]["archived"] is False
    log = sims.mailchimp.log.entries(after_seq=after)
    posted = [(r["method"], r["path"].rsplit("/", 1)[-1], r["operations"], r["record_count"]) for r in log
              if r["method"] == "POST"]
    assert posted == [("POST", "batches", {"PATCH": 3, "POST": 1}, 4), ("POST", "contacts", {}, 1)]
