"""Kafka → Delta ingestion: poll → decode → guard → buffer → land → commit offsets.

The stages are modules (``source``, ``decode``, ``guard``, ``batch``, ``writer``, ``offsets``,
``dead_letters``); they exchange the frozen dataclasses in ``records`` and never import each
other. ``landing`` lands one batch in the commit order written down there; ``retry`` is the retry
policy; ``drain`` decides when ``--once`` is done; ``worker`` is only the loop that wires them.
"""
