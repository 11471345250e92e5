"""The dead-letter topic as an operator works it: read letters, select them, replay or purge them.

The DLQ is a log: a letter is never changed or removed before retention takes it. What happened to
a letter is a marker in ``contacts.dlq.handled`` (compacted, keyed ``<partition>:<offset>``):
``replayed`` (sent back to the topic it failed at) or ``purged`` (an operator decided it needs
nothing more). Handled letters are left out of listings and never replayed again, so replaying the
same selection twice sends each letter once. A replay is sent before its marker is written: a crash
in between can send a letter twice, which the stages absorb (records are versioned), never lose it.
A reference letter (``contactsync.original_size`` and ``original_sha256`` in its headers) stands for a
message too large to dead-letter whole: it holds only the original's first bytes, so it is listed and
shown but never replayed.
"""
