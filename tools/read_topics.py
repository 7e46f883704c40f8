#!/usr/bin/env python3
"""Reads Sensei's six topics from a Kafka cluster with an independent client
(confluent-kafka, librdkafka's Python binding) and decodes every record.

    read_topics.py BOOTSTRAP [--key MIGRATION_ID] [--group GROUP]
                   [--follow SECONDS] [--fetch-wait-ms MS]

Prints one JSON document: per topic the records read, their keys, and the
decoded JSON of each (a record that is not JSON is an error, exit 1). With
--group the consumer joins that group and commits what it read, so a second
run resumes after it. With --follow it keeps consuming for that many seconds
after the last record and reports, per record, the delay between its
timestamp (when the producer created it) and its arrival here.
"""

import argparse
import json
import sys
import time

from confluent_kafka import Consumer, KafkaError, KafkaException, TopicPartition

TOPICS = [
    "ingestion.complete",
    "transformation.complete",
    "verification.complete",
    "delivery.complete",
    "migration.events",
    "agent.coordination",
]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("bootstrap")
    ap.add_argument("--key")
    ap.add_argument("--group")
    ap.add_argument("--follow", type=float, default=0.0)
    ap.add_argument("--fetch-wait-ms", type=int, help="the consumer's fetch.wait.max.ms (librdkafka default 500)")
    a = ap.parse_args()
    conf = {
        "bootstrap.servers": a.bootstrap,
        "group.id": a.group or "sensei-read-topics",
        "enable.auto.commit": False,
        "auto.offset.reset": "earliest",
    }
    if a.fetch_wait_ms is not None:
        conf["fetch.wait.max.ms"] = a.fetch_wait_ms
    c = Consumer(conf)
    # Without --follow: read until every topic reached its end as the
    # broker reported it at the start.
    ends = {}
    for t in TOPICS:
        lo, hi = c.get_watermark_offsets(TopicPartition(t, 0), timeout=10)
        ends[t] = hi
    start_of = {t: 0 for t in TOPICS}
    if a.group:
        c.subscribe(TOPICS)
    elif a.follow > 0:
        # Following: only what is published from now on.
        c.assign([TopicPartition(t, 0, ends[t]) for t in TOPICS])
        start_of = dict(ends)
    else:
        c.assign([TopicPartition(t, 0, 0) for t in TOPICS])
    out = {t: {"records": 0, "keys": [], "offsets": [], "documents": []} for t in TOPICS}
    delays = []
    bad = []
    quiet_since = time.time()
    if a.group:
        committed = c.committed([TopicPartition(t, 0) for t in TOPICS], timeout=10)
        for tp in committed:
            start_of[tp.topic] = max(tp.offset, 0)
    deadline = time.time() + 60
    while True:
        m = c.poll(0.5)
        now = time.time()
        if m is None:
            done = all(
                (out[t]["offsets"][-1] + 1 if out[t]["offsets"] else start_of[t]) >= ends[t]
                for t in TOPICS
            )
            if a.follow > 0:
                if now - quiet_since > a.follow:
                    break
            elif done or now > deadline:
                break
            continue
        if m.error():
            if m.error().code() == KafkaError._PARTITION_EOF:
                continue
            print(json.dumps({"error": str(m.error())}))
            return 1
        quiet_since = now
        t = m.topic()
        key = (m.key() or b"").decode()
        try:
            doc = json.loads(m.value())
        except Exception as e:  # noqa: BLE001 - any decode failure is reported
            bad.append({"topic": t, "offset": m.offset(), "error": str(e)})
            continue
        if a.key and key != a.key:
            continue
        o = out[t]
        o["records"] += 1
        o["keys"].append(key)
        o["offsets"].append(m.offset())
        o["documents"].append(doc)
        kind, ts = m.timestamp()
        if kind != 0:
            delays.append(now * 1000.0 - ts)
    if a.group:
        try:
            c.commit(asynchronous=False)
        except KafkaException as e:
            # Nothing consumed since the last commit: nothing to commit.
            if e.args[0].code() != KafkaError._NO_OFFSET:
                raise
    c.close()
    summary = {"topics": out, "undecodable": bad}
    if delays:
        delays.sort()
        summary["delay_ms"] = {
            "n": len(delays),
            "median": delays[len(delays) // 2],
            "p95": delays[int(len(delays) * 0.95) - 1 if len(delays) > 1 else 0],
            "max": delays[-1],
        }
    print(json.dumps(summary))
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
