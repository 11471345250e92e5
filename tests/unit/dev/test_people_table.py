"""The SQL changes the Postgres demo, the CDC tests and the CDC benchmark write."""

from __future__ import annotations

from collections import Counter

from pipeline.dev.people_table import ChangeMix


def test_the_mix_never_gives_two_rows_one_email_and_only_changes_live_rows() -> None:
    mix = ChangeMix(seed=3)
    statements = [*mix.inserts(20), *mix.changes(2000)]
    live: set[int] = set()
    emails: list[str] = []
    kinds: Counter[str] = Counter()
    for statement in statements:
        verb = statement.sql.split()[0]
        kinds[verb] += 1
        if verb == "INSERT":
            live.add(statement.params[0])
            emails.append(statement.params[1])
        else:
            assert statement.params[-1] in live, statement
            if verb == "DELETE":
                live.remove(statement.params[-1])
            elif "@" in str(statement.params[0]):
                emails.append(statement.params[0])
    assert len(emails) == len(set(emails))
    assert min(kinds["INSERT"], kinds["UPDATE"], kinds["DELETE"]) > 200, kinds


def test_the_same_seed_writes_the_same_changes() -> None:
    assert list(ChangeMix(seed=9).changes(50)) == list(ChangeMix(seed=9).changes(50))
