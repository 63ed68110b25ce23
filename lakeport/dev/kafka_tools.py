"""Small Kafka helpers for the demo, the benchmark and tests: create topics, produce."""

from __future__ import annotations

import time
from collections.abc import Iterable
from typing import Any

from confluent_kafka import KafkaException, Producer
from confluent_kafka.admin import AdminClient, NewTopic


def create_topics(conf: dict[str, Any], topics: dict[str, int], *, timeout: float = 30.0) -> None:
    """Create topics (name → partitions) that do not exist yet, and wait until they are visible."""
    admin = AdminClient({k: v for k, v in conf.items() if not k.startswith(("group.", "enable.", "auto."))})
    existing = set(admin.list_topics(timeout=10).topics)
    new = [NewTopic(name, num_partitions=n, replication_factor=1) for name, n in topics.items() if name not in existing]
    if new:
        for future in admin.create_topics(new, operation_timeout=timeout).values():
            try:
                future.result(timeout=timeout)
            except KafkaException as exc:
                if "TOPIC_ALREADY_EXISTS" not in str(exc):
                    raise
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        meta = admin.list_topics(timeout=10).topics
        if all(name in meta and len(meta[name].partitions) == n for name, n in topics.items()):
            return
        time.sleep(0.2)
    raise TimeoutError(f"topics not visible after {timeout}s: {sorted(topics)}")


def produce(
    conf: dict[str, Any],
    messages: Iterable[tuple[str, bytes | None, bytes | None]],
    *,
    partition: int | None = None,
) -> int:
    """Produce (topic, key, value) messages with an idempotent producer; returns the count acked."""
    producer = Producer(
        {
            **{
                k: v
                for k, v in conf.items()
                if not k.startswith(("group.", "enable.auto", "auto.", "enable.partition"))
            },
            "enable.idempotence": True,
            "linger.ms": 20,
            "batch.num.messages": 10000,
            "queue.buffering.max.messages": 500000,
            "message.max.bytes": 10 * 1024 * 1024,
        }
    )
    errors: list[str] = []
    acked = 0

    def on_delivery(err: Any, _msg: Any) -> None:
        nonlocal acked
        if err is not None:
            errors.append(str(err))
        else:
            acked += 1

    for topic, key, value in messages:
        while True:
            try:
                kwargs: dict[str, Any] = {"key": key, "value": value, "on_delivery": on_delivery}
                if partition is not None:
                    kwargs["partition"] = partition
                producer.produce(topic, **kwargs)
                break
            except BufferError:
                producer.poll(0.05)
        producer.poll(0)
    remaining = producer.flush(60)
    if remaining or errors:
        raise RuntimeError(f"produce failed: {remaining} unflushed, errors: {errors[:3]}")
    return acked
