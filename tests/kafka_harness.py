"""Where the tests' Kafka broker comes from, and fresh topic names per test.

The broker is, in this order of preference:

1. the cluster named by ``KAFKA_BOOTSTRAP_SERVERS``, when it is set;
2. the official ``apache/kafka`` image through testcontainers, when a Docker engine answers;
3. the local Apache Kafka of ``pipeline.dev.local_kafka`` (jars from Maven Central, fetched into the
   shared cache on first use), in a fresh run dir on free ports.

Tests share the broker and never a topic: each test gets its own topic prefix. Only the local broker
(3.) can be stopped and started again by a test (``SessionBroker.outage``): the harness owns its
process and its data dir; a cluster or container the harness did not start is not its to restart.
"""

from __future__ import annotations

import asyncio
import os
import socket
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from pipeline.dev.local_kafka import LocalKafka, throwaway_broker
from pipeline.settings import LocalKafkaSettings

_DOCKER_PING_TIMEOUT_S = 2


@dataclass(frozen=True)
class SessionBroker:
    """The test session's broker: where it is, and the local broker when the harness runs it."""

    bootstrap: str
    local: LocalKafka | None = None
    origin: str = "the local broker"

    def cannot_restart(self) -> str | None:
        """Why a test cannot stop and start this broker; None when it can."""
        if self.local is None:
            return f"the session's broker is {self.origin}, which the test harness does not run"
        return None

    async def outage(self, down_s: float) -> float:
        """Stop the broker (SIGTERM, its controlled shutdown), keep it down ``down_s``, start it again
        on the same ports with the same data; returns how long it was away (until it answers again)."""
        assert self.local is not None, self.cannot_restart()
        stopped = time.monotonic()
        await asyncio.to_thread(self.local.stop)
        await asyncio.sleep(down_s)
        await asyncio.to_thread(self.local.start)
        return time.monotonic() - stopped


@contextmanager
def kafka_broker(settings: LocalKafkaSettings, run_dir: Path) -> Iterator[SessionBroker]:
    """Yield the broker of the test session; stop what was started for it afterwards."""
    explicit = os.environ.get("KAFKA_BOOTSTRAP_SERVERS", "")
    if explicit:
        yield SessionBroker(explicit, origin=f"KAFKA_BOOTSTRAP_SERVERS={explicit}")
    elif _docker_answers():
        with _docker_broker(settings.version) as bootstrap:
            yield SessionBroker(bootstrap, origin="a Docker container (testcontainers)")
    else:
        with throwaway_broker(settings, run_dir) as broker:
            yield SessionBroker(broker.bootstrap, broker)


def fresh_prefix() -> str:
    """A topic prefix no other test, and no earlier run, has used."""
    return f"t{uuid.uuid4().hex[:8]}."


def _docker_answers() -> bool:
    """Whether a Docker engine answers a ping, asked with a short timeout (a client alone is not enough)."""
    import docker
    from docker.errors import DockerException

    try:
        client = docker.from_env(timeout=_DOCKER_PING_TIMEOUT_S)
        try:
            return bool(client.ping())
        finally:
            client.close()
    except (DockerException, OSError):
        return False


@contextmanager
def _docker_broker(version: str) -> Iterator[str]:
    """A single-node KRaft broker from the ``apache/kafka`` image.

    testcontainers' ``KafkaContainer`` drives Confluent's image only, so this configures the generic
    container the way docker-compose.kafka.yml does. The host port equals the container port, so the
    advertised address is known before the container starts.
    """
    from testcontainers.core.container import DockerContainer
    from testcontainers.core.wait_strategies import LogMessageWaitStrategy

    with socket.socket() as sock:
        sock.bind(("", 0))
        port = sock.getsockname()[1]
    container = DockerContainer(f"apache/kafka:{version}").with_bind_ports(port, port)
    host = container.get_docker_client().host()
    environment = {
        "KAFKA_NODE_ID": "1",
        "KAFKA_PROCESS_ROLES": "broker,controller",
        "KAFKA_LISTENERS": f"PLAINTEXT://:{port},CONTROLLER://:9093",
        "KAFKA_ADVERTISED_LISTENERS": f"PLAINTEXT://{host}:{port}",
        "KAFKA_LISTENER_SECURITY_PROTOCOL_MAP": "CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
        "KAFKA_CONTROLLER_LISTENER_NAMES": "CONTROLLER",
        "KAFKA_CONTROLLER_QUORUM_VOTERS": "1@localhost:9093",
        "KAFKA_INTER_BROKER_LISTENER_NAME": "PLAINTEXT",
        "KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR": "1",
        "KAFKA_OFFSETS_TOPIC_NUM_PARTITIONS": "1",
        "KAFKA_TRANSACTION_STATE_LOG_REPLICATION_FACTOR": "1",
        "KAFKA_TRANSACTION_STATE_LOG_MIN_ISR": "1",
        "KAFKA_SHARE_COORDINATOR_STATE_TOPIC_REPLICATION_FACTOR": "1",
        "KAFKA_SHARE_COORDINATOR_STATE_TOPIC_MIN_ISR": "1",
        "KAFKA_GROUP_INITIAL_REBALANCE_DELAY_MS": "0",
        "KAFKA_AUTO_CREATE_TOPICS_ENABLE": "false",
        "KAFKA_HEAP_OPTS": "-Xms256m -Xmx512m",
    }
    for key, value in environment.items():
        container.with_env(key, value)
    container.waiting_for(LogMessageWaitStrategy("Kafka Server started").with_startup_timeout(120))
    with container:
        yield f"{host}:{port}"
