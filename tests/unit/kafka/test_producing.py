"""The partition ``produce_all`` picks for a keyed message (pipeline/kafka/producing.py)."""

from __future__ import annotations

import random

from aiokafka.partitioner import DefaultPartitioner

from pipeline.kafka.producing import key_hash


def test_a_keyed_message_goes_to_the_partition_aiokafka_would_send_it_to() -> None:
    """The cached hash picks what the producer's own partitioner picks, for any key and partition
    count, and again when the key comes back (a record's id at its next stage)."""
    partitioner = DefaultPartitioner()
    rng = random.Random(7)
    keys = [rng.randbytes(rng.randint(0, 40)) for _ in range(2_000)] + [b"42", "record-é".encode()]
    for count in (1, 6, 12, 37):
        every = list(range(count))
        for key in keys + keys:
            assert every[key_hash(key) % count] == partitioner(key, every, every)
