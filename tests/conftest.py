"""Fixtures: the real local stack (Tansu broker + SeaweedFS S3 + PostgreSQL), started once per
session by the project's own launcher on free loopback ports, and stopped by pid at the end; and
its compatibility tier, Apache Kafka 4 (KRaft) from Maven Central's jars (``make jvm-deps``)."""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from lakeport.dev import jvm, stack
from lakeport.dev.processes import free_port, stop


@pytest.fixture(scope="session")
def local_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[stack.StackState]:
    home = tmp_path_factory.mktemp("stack")
    state = stack.up(home, timeout=90)
    try:
        yield state
    finally:
        stack.down(home)


@pytest.fixture
def s3_lake(local_stack: stack.StackState, request: pytest.FixtureRequest) -> str:
    """A fresh lake prefix in the stack's bucket for one test."""
    name = request.node.name.replace("[", "-").replace("]", "").lower()[:40]
    return f"s3://{local_stack.bucket}/tests/{name}-{id(request)}"


@pytest.fixture(scope="session")
def apache_stack(local_stack: stack.StackState, tmp_path_factory: pytest.TempPathFactory) -> Iterator[stack.StackState]:
    """The local stack with Apache Kafka 4 in place of Tansu (the same S3 and PostgreSQL)."""
    home = tmp_path_factory.mktemp("apache")
    kafka = jvm.start_kafka(home, free_port(), time.monotonic() + 120)
    try:
        yield replace(local_stack, home=str(home), kafka_bootstrap=f"127.0.0.1:{kafka.port}", services=[kafka])
    finally:
        stop(kafka)


@pytest.fixture(params=["tansu", "apache"])
def broker_stack(request: pytest.FixtureRequest) -> stack.StackState:
    """The local stack on each broker in turn: Tansu, then Apache Kafka (the compatibility tier)."""
    return request.getfixturevalue("local_stack" if request.param == "tansu" else "apache_stack")  # type: ignore[no-any-return]
