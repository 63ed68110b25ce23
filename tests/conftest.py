"""Fixtures: the real local stack (Tansu broker + SeaweedFS S3), started once per session by the
project's own launcher on free loopback ports, and stopped by pid at the end."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from lakeport.dev import stack


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
