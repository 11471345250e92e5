"""The start-up check of the Faust internals that pipeline.kafka overrides and reads."""

from __future__ import annotations

import pytest
from faust.transport import consumer

from pipeline.errors import ConfigError
from pipeline.kafka import faust_internals
from pipeline.kafka.transport import Consumer


def test_the_pinned_faust_has_everything() -> None:
    assert faust_internals.missing_internals() == []
    faust_internals.require_internals()


def test_every_hook_our_consumer_overrides_is_checked() -> None:
    ours = {name for name, value in vars(Consumer).items() if callable(value) and not name.startswith("__")}
    faust_owned = {name for name in ours if any(name in vars(k) for k in consumer.Consumer.__mro__)}
    assert faust_owned == set(faust_internals.CONSUMER_HOOKS)


def test_a_renamed_hook_refuses_the_start_naming_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delattr(consumer.Consumer, "_new_offset")
    with pytest.raises(ConfigError, match=r"lacks Consumer\._new_offset, which contactsync relies on"):
        faust_internals.require_internals()


def test_renamed_bookkeeping_is_named_too(monkeypatch: pytest.MonkeyPatch) -> None:
    annotations = dict(consumer.Consumer.__annotations__)
    del annotations["_acked_index"]
    monkeypatch.setattr(consumer.Consumer, "__annotations__", annotations)
    assert faust_internals.missing_internals() == ["Consumer._acked_index"]
