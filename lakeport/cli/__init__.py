"""The ``lakeport`` command line (an adapter on top: it may import every library and the dev tools)."""
