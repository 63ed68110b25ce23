"""Checks on a record's raw bytes before any parsing: size (``max_message_bytes``), empty values,
tombstones, pathological nesting, and UTF-8 (pyarrow would silently replace invalid bytes). A
failing record gets its reason in ``bad`` and becomes a dead letter; nothing is raised."""

from __future__ import annotations

# Values nesting deeper than this never reach the parser: pyarrow's JSON reader crashes the
# process (stack overflow) somewhere past 6,000 levels (5,000 parse fine). The configured
# max_nesting_depth (<= 512) is enforced on the parsed types, in ``guard``. Only values longer than
# twice this can nest that deep, so ordinary messages are never scanned.
RAW_DEPTH_LIMIT = 1000


def validate(values: list[bytes | None], *, max_message_bytes: int, bad: dict[int, str]) -> tuple[list[int], list[int]]:
    """Indexes to parse and tombstone indexes; limit and encoding failures go to ``bad``."""
    limit = max_message_bytes
    try:
        lengths = list(map(len, values))  # type: ignore[arg-type]  # TypeError: a tombstone is present
    except TypeError:
        lengths = []
    if lengths and min(lengths) > 0 and max(lengths) <= limit:
        todo, tombstones = list(range(len(values))), list[int]()
    else:
        todo, tombstones = [], []
        for i, v in enumerate(values):
            if v is None:
                tombstones.append(i)
            elif len(v) > limit:
                bad[i] = f"value of {len(v)} bytes exceeds max_message_bytes={limit}"
            elif not v:
                bad[i] = "empty value"
            else:
                todo.append(i)
    if not lengths or max(lengths) > 2 * RAW_DEPTH_LIMIT:  # only long values can nest that deep
        long = [i for i in todo if len(values[i] or b"") > 2 * RAW_DEPTH_LIMIT]
        deep = {i for i in long if json_depth(values[i] or b"", RAW_DEPTH_LIMIT) > RAW_DEPTH_LIMIT}
        for i in deep:
            bad[i] = f"nesting depth exceeds {RAW_DEPTH_LIMIT} (max_nesting_depth is checked after parsing)"
        todo = [i for i in todo if i not in deep]
    return todo, tombstones


def json_depth(value: bytes, limit: int) -> int:
    """Nesting depth of a JSON text (brackets outside strings), counted up to ``limit + 1``. Cheap
    when brackets are few: a value with at most ``limit`` of them is never scanned."""
    if value.count(b"{") + value.count(b"[") <= limit:
        return 0
    deep = level = 0
    in_string = escaped = False
    for byte in value:
        if in_string:
            if escaped:
                escaped = False
            elif byte == 0x5C:  # backslash
                escaped = True
            elif byte == 0x22:  # quote
                in_string = False
        elif byte == 0x22:
            in_string = True
        elif byte in (0x7B, 0x5B):  # { [
            level += 1
            if level > limit:
                return level
            deep = max(deep, level)
        elif byte in (0x7D, 0x5D):
            level -= 1
    return deep


def utf8(values: list[bytes | None], todo: list[int], bad: dict[int, str]) -> list[int]:
    """Drop values that are not valid UTF-8 (pyarrow would silently replace the bytes)."""
    keep = []
    for i in todo:
        value = values[i] or b""
        if value.isascii():
            keep.append(i)
            continue
        try:
            value.decode("utf-8")
            keep.append(i)
        except UnicodeDecodeError as exc:
            bad[i] = f"invalid UTF-8 at byte {exc.start}"
    return keep
