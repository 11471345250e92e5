"""The Faust app: the one registry of topics, tables and agents (``agents/`` modules register on it).

This is the only module that reads settings at import time, because Faust's worker imports the app
by name (``contactsync worker`` runs ``pipeline.app:app``). It builds the worker's one context
(``pipeline.context``); agents and views import ``app`` and ``context`` from here.
"""

from __future__ import annotations

from pipeline.context import build_context
from pipeline.freed_memory import RELEASE_INTERVAL_S, release_freed_memory
from pipeline.settings import Settings

context = build_context(Settings())
app = context.app
app.timer(interval=RELEASE_INTERVAL_S)(release_freed_memory)
