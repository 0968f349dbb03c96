"""Channel refs as iii shapes them: dicts (or their JSON text) with channel_id, access_key and
direction."""
from __future__ import annotations

import json
from typing import Any, List, Mapping, Tuple, Union

RefLike = Union[str, bytes, Mapping[str, Any]]


def is_channel_ref(value: Any) -> bool:
    """iii's shape test: a dict whose channel_id and access_key are strings and whose direction
    is "read" or "write" (other fields are allowed)."""
    return (isinstance(value, Mapping) and isinstance(value.get("channel_id"), str)
            and isinstance(value.get("access_key"), str) and value.get("direction") in ("read", "write"))


def extract_channel_refs(value: Any) -> List[Tuple[str, dict]]:
    """Every channel ref inside a JSON-like value, depth first, with iii's path syntax
    ("reader", "a.b[0]", "[2].x"; the root itself is ""). A ref's own fields are not searched."""
    found: List[Tuple[str, dict]] = []

    def walk(v: Any, path: str) -> None:
        if is_channel_ref(v):
            found.append((path, dict(v)))
        elif isinstance(v, Mapping):
            for k, x in v.items():
                walk(x, f"{path}.{k}" if path else str(k))
        elif isinstance(v, (list, tuple)):
            for i, x in enumerate(v):
                walk(x, f"{path}[{i}]")

    walk(value, "")
    return found


def _ref_json(ref: RefLike) -> str:
    if isinstance(ref, (bytes, bytearray)):
        ref = ref.decode()
    if isinstance(ref, str):
        return ref
    if isinstance(ref, Mapping):
        return json.dumps(dict(ref))
    raise TypeError(f"a channel ref is a dict or a JSON string, not {type(ref).__name__}")
