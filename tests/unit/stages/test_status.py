"""How outcomes build each writer's status rows, and how a record's rows merge into its status."""

from __future__ import annotations

import random

from pipeline.cli.status import status_lines
from pipeline.stages.status import (
    Writer,
    apply_entry,
    entry_of,
    merged_status,
    record_row_keys,
    rows_after,
    status_key,
)
from schemas.contact import DroppedField
from schemas.dispatch import Outcome
from schemas.status import ProviderStatus, RecordStatus


def outcome(version: int, state: str, provider: str = "hubspot", at_ms: int | None = None, **extra: object) -> Outcome:
    return Outcome(record_id="1", provider=provider, version=version, state=state,
                   at_ms=version if at_ms is None else at_ms, source_ts_ms=0, **extra)


def folded(outcomes: list[Outcome]) -> RecordStatus:
    """What one row fed every outcome in order shows (the status before rows were kept per writer)."""
    status = RecordStatus()
    for item in outcomes:
        status = apply_entry(status, item.provider, entry_of(item))
    return status


def rows_of(writer: Writer, outcomes: list[Outcome]) -> list[tuple[bytes, bytes]]:
    """``writer``'s rows after ``outcomes``, as (key, value) the way the table stores them."""
    rows = rows_after(outcomes, lambda record_id, provider: None)
    return [(status_key(record_id, provider, writer), entry.model_dump_json().encode())
            for (record_id, provider), entry in rows.items()]


def test_newer_outcomes_replace_older_and_older_are_ignored() -> None:
    """The status shows the newest version's outcome per provider, whatever the arrival order."""
    status = folded([outcome(1, "retrying"), outcome(2, "delivered", provider_id="h-9"), outcome(1, "delivered")])
    entry = status.providers["hubspot"]
    assert (entry.version, entry.state, entry.provider_id) == (2, "delivered", "h-9")


def test_superseded_redelivery_does_not_hide_delivered() -> None:
    """A redelivery skipped by the guard leaves 'delivered' in place; providers are independent."""
    status = folded([outcome(3, "delivered"), outcome(3, "superseded"), outcome(1, "skipped_by_rule", provider="mailchimp")])
    assert status.providers["hubspot"].state == "delivered"
    assert status.providers["mailchimp"].state == "skipped_by_rule"


def test_a_batch_of_outcomes_gives_one_row_per_record_and_provider() -> None:
    """A writer's outcomes are folded per record and provider in the order recorded, each from its
    stored row, read once; a row the batch leaves as it was is not written again."""
    reads: list[tuple[str, str]] = []
    stored_entry = entry_of(outcome(5, "delivered"))

    def stored(record_id: str, provider: str) -> ProviderStatus | None:
        reads.append((record_id, provider))
        return stored_entry if (record_id, provider) == ("1", "hubspot") else None

    other = Outcome(record_id="2", provider="hubspot", version=1, state="delivered", at_ms=1, source_ts_ms=0)
    batch = [outcome(4, "delivered"), other, outcome(6, "retrying"), outcome(6, "delivered"),
             outcome(5, "superseded", provider="mailchimp")]
    rows = rows_after(batch, stored)
    assert reads == [("1", "hubspot"), ("2", "hubspot"), ("1", "mailchimp")]
    assert (rows["1", "hubspot"].version, rows["1", "hubspot"].state) == (6, "delivered")
    assert rows["2", "hubspot"].version == 1 and rows["1", "mailchimp"].state == "superseded"
    assert rows_after([outcome(3, "delivered"), outcome(5, "superseded")], stored) == {}  # older; a redelivery


def test_a_dispatch_retrying_and_delivered_merge_to_delivered() -> None:
    """The dispatcher's row holds its newest entry (delivered after retrying, same version); merged
    with another writer's older entry for the provider (route's dead letter of v4), delivered v5 shows."""
    dispatch = rows_of("dispatch", [outcome(5, "retrying", at_ms=10), outcome(5, "delivered", at_ms=20, provider_id="h-1")])
    route = rows_of("route", [outcome(4, "dead_lettered", at_ms=5)])
    status = merged_status([*route, *dispatch])
    assert status is not None
    entry = status.providers["hubspot"]
    assert (entry.state, entry.version, entry.provider_id) == ("delivered", 5, "h-1")


def test_an_unrouted_row_goes_once_a_provider_has_a_version_as_new() -> None:
    """Transform's unrouted row shows until a version as new reaches a provider; one newer stays."""
    unrouted = rows_of("transform", [outcome(4, "unrouted", provider="none", at_ms=4)])
    delivered = rows_of("dispatch", [outcome(5, "delivered", at_ms=9)])
    merged = merged_status([*unrouted, *delivered])
    assert merged is not None and set(merged.providers) == {"hubspot"}
    later = rows_of("transform", [outcome(6, "unrouted", provider="none", at_ms=12)])
    merged = merged_status([*later, *delivered])
    assert merged is not None and set(merged.providers) == {"hubspot", "none"}


def test_an_older_version_never_shows_over_a_newer_one() -> None:
    """Whichever row was written last, and in whatever order the rows are read, the newest version
    shows: transform's skip of v7 over the dispatcher's later delivery of v6."""
    skipped = rows_of("transform", [outcome(7, "skipped_by_rule", at_ms=3)])
    delivered = rows_of("dispatch", [outcome(6, "delivered", at_ms=9)])
    for rows in ([*skipped, *delivered], [*delivered, *skipped]):
        merged = merged_status(rows)
        assert merged is not None
        assert (merged.providers["hubspot"].version, merged.providers["hubspot"].state) == (7, "skipped_by_rule")


def test_merged_rows_show_what_one_row_fed_every_outcome_showed() -> None:
    """For outcomes from every writer in time order (each provider's versions not going back), the
    writers' rows merged equal the single row the status stage kept before: same user-visible status."""
    writers: list[Writer] = ["transform", "route", "dispatch"]
    states = ["delivered", "superseded", "retrying", "dead_lettered", "skipped_by_rule"]
    checked = 0
    for seed in range(400):
        rng = random.Random(seed)
        versions = {"none": 1, "hubspot": 1, "mailchimp": 1}
        by_writer: dict[Writer, list[Outcome]] = {writer: [] for writer in writers}
        in_order: list[Outcome] = []
        for at_ms in range(rng.randint(1, 9)):
            writer = rng.choice(writers)
            provider = rng.choice(["none", "hubspot", "mailchimp"] if writer == "transform" else ["hubspot", "mailchimp"])
            versions[provider] += rng.randint(0, 1)
            state = "unrouted" if provider == "none" else rng.choice(states)
            provider_id = f"id-{at_ms}" if writer == "dispatch" and state == "delivered" else None
            item = outcome(versions[provider], state, provider, at_ms=at_ms, provider_id=provider_id)
            by_writer[writer].append(item)
            in_order.append(item)
        rows = [row for writer in writers for row in rows_of(writer, by_writer[writer])]
        rng.shuffle(rows)
        assert merged_status(rows) == folded(in_order), seed
        checked += 1
    assert checked == 400


def test_a_row_written_before_the_split_still_counts() -> None:
    """A record's old row (one RecordStatus under its id) merges with the writers' rows: its entries
    show until a newer one comes; a record with no row has no status."""
    old = folded([outcome(3, "delivered", provider_id="h-3"), outcome(2, "skipped_by_rule", provider="mailchimp")])
    legacy = [(b"1", old.model_dump_json().encode())]
    newer = rows_of("dispatch", [outcome(4, "retrying", at_ms=50)])
    merged = merged_status([*legacy, *newer])
    assert merged is not None
    assert (merged.providers["hubspot"].state, merged.providers["hubspot"].provider_id) == ("retrying", "h-3")
    assert merged.providers["mailchimp"].state == "skipped_by_rule"
    assert merged_status([]) is None


def test_every_row_key_of_a_record_is_looked_up_and_none_is_another_records() -> None:
    """The reader looks up each writer's row at each provider and at none, and the old row; no key of
    record 1 is a key of record 10 or a record id (record ids hold no control character)."""
    keys = record_row_keys("1", ["hubspot", "mailchimp"])
    assert status_key("1", "none", "transform") in keys and status_key("1", "mailchimp", "dispatch") in keys
    assert keys[-1] == b"1" and len(keys) == len(set(keys)) == 3 * 3 + 1
    assert not set(keys) & set(record_row_keys("10", ["hubspot", "mailchimp"]))


def test_a_dropped_field_reaches_the_status_and_the_status_command() -> None:
    """What the transform stage dropped (an invalid phone) is kept on the record's status per provider,
    printed by `contactsync status` with its reason; a status row without it (written before) reads as none."""
    phone = DroppedField(field="phone", reason="not a phone number (default region US)")
    status = folded([outcome(2, "delivered", dropped_fields=(phone,)),
                     outcome(2, "skipped_by_rule", provider="mailchimp", dropped_fields=(phone,))])
    assert status.providers["hubspot"].dropped_fields == (phone,)

    lines = status_lines("7", status)
    assert [line.split()[-2] for line in lines[2:4]] == ["phone", "phone"]  # the DROPPED column
    assert lines[4:] == ["phone dropped from the contact: not a phone number (default region US)"]
    old_row = '{"providers": {"hubspot": {"state": "delivered", "version": 1, "attempts": 1, "at_ms": 5}}}'
    assert RecordStatus.model_validate_json(old_row).providers["hubspot"].dropped_fields == ()


def test_an_unrouted_row_shows_its_reason_until_a_newer_version_reaches_a_provider() -> None:
    """`contactsync status` names why a change went nowhere; a later delivery replaces that row."""
    unrouted = outcome(4, "unrouted", provider="none", error='no provider for type "partner"')
    status = folded([unrouted])
    assert any('no provider for type "partner"' in line for line in status_lines("1", status))
    assert set(folded([unrouted, outcome(5, "delivered")]).providers) == {"hubspot"}
