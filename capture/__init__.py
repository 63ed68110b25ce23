"""Change capture: PostgreSQL logical replication (``pgoutput``) → Debezium-compatible Kafka topics.

In production users run Debezium; this publisher makes the whole CDC flow runnable and testable on
one machine. Modules: ``pgoutput`` (the wire protocol), ``envelopes`` (Debezium events and the
outbox router), ``snapshot`` (the initial ``op: r`` read), ``publisher`` (the loop).
"""
