"""Kafka → Delta ingestion: poll → decode → buffer → write+commit.

Modules are the pipeline stages (``source``, ``decode``, ``batch``, ``writer``, ``offsets``,
``dead_letters``); they exchange the frozen dataclasses in ``records`` and never import each
other. ``worker`` is the thin loop that wires them.
"""
