"""Stripe's request encoding: `application/x-www-form-urlencoded` with bracketed keys
(`line_items[0][price_data][currency]=usd`, `metadata[purchase_id]=7`), as stripe-python
sends it (`stripe/_encode.py`)."""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import parse_qsl

_PART = re.compile(r"\[([^\[\]]*)\]")


def decode(body: str) -> dict[str, Any]:
    """Nested dicts from bracketed keys; dicts whose keys are 0..n-1 become lists."""
    root: dict[str, Any] = {}
    for key, value in parse_qsl(body, keep_blank_values=True):
        head = key.split("[", 1)[0]
        path = [head, *_PART.findall(key[len(head) :])]
        node = root
        for part in path[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ValueError(f"conflicting key {key!r}")
        node[path[-1]] = value
    return _lists(root)


def _lists(node: Any) -> Any:
    if not isinstance(node, dict):
        return node
    node = {k: _lists(v) for k, v in node.items()}
    if node and all(k.isdigit() for k in node) and sorted(map(int, node)) == list(range(len(node))):
        return [node[str(i)] for i in range(len(node))]
    return node
