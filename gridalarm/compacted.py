"""Read a compacted control topic (silences, labels) as a table: the latest value per key.

On a compacted topic the latest message of a key is its state and a tombstone (null value)
deletes the key; reading every partition from the beginning to the end offsets seen at the
start gives the state as of that moment. Offsets on such a topic have gaps (compaction drops
older messages), so the read ends on the consumer's position, not on a last offset seen.
"""

from __future__ import annotations

import time

from gridalarm.kafka_auth import KafkaTarget, access_of


class ControlTopicError(ValueError):
    """The topic is missing or could not be read to its end; one line for the operator."""


def read_compacted(bootstrap: KafkaTarget, topic: str, timeout: float = 30.0) -> dict[bytes, bytes]:
    """Key → latest value of ``topic`` (keys whose latest message is a tombstone are absent)."""
    from kafka import KafkaConsumer, TopicPartition

    consumer = KafkaConsumer(**access_of(bootstrap).kafka_python(), enable_auto_commit=False)
    try:
        partitions = consumer.partitions_for_topic(topic)
        if not partitions:
            raise ControlTopicError(f"topic {topic!r} does not exist on {bootstrap}")
        tps = [TopicPartition(topic, p) for p in sorted(partitions)]
        consumer.assign(tps)
        consumer.seek_to_beginning(*tps)
        ends = consumer.end_offsets(tps)
        behind = {tp for tp in tps if ends[tp] > 0}
        table: dict[bytes, bytes] = {}
        deadline = time.monotonic() + timeout
        while behind:
            if time.monotonic() > deadline:
                raise ControlTopicError(
                    f"could not read topic {topic!r} at {bootstrap} to its end in {timeout:.0f}s"
                )
            for records in consumer.poll(timeout_ms=500).values():
                for record in records:
                    if record.key is None:
                        continue  # not written by gridalarm: control messages are keyed
                    if record.value is None:
                        table.pop(record.key, None)
                    else:
                        table[record.key] = record.value
            behind = {tp for tp in behind if consumer.position(tp) < ends[tp]}
        return table
    finally:
        consumer.close()


def write_compacted(
    bootstrap: KafkaTarget, topic: str, key: bytes, value: bytes | None, timeout: float = 30.0
) -> None:
    """Write one message (``None``: a tombstone) and wait until the broker acknowledged it."""
    from kafka import KafkaProducer
    from kafka.errors import KafkaError

    producer = KafkaProducer(**access_of(bootstrap).kafka_python(), acks="all", retries=5)
    try:
        producer.send(topic, key=key, value=value).get(timeout=timeout)
        producer.flush(timeout=timeout)
    except KafkaError as err:
        raise ControlTopicError(f"cannot write to topic {topic!r} at {bootstrap}: {err}") from None
    finally:
        producer.close(timeout=5)
