"""page_size / page_token for list calls."""

from __future__ import annotations

import base64
from collections.abc import Iterable, Iterator
from itertools import islice
from typing import TypeVar

from shoal.server.api.errors import invalid

DEFAULT_PAGE_SIZE = 1000
MAX_PAGE_SIZE = 5000
X = TypeVar("X")


def page(items: Iterable[X], page_size: int, page_token: str) -> tuple[list[X], str]:
    """One page of `items` and the token for the next ('' at the end)."""
    if page_size < 0:
        raise invalid("INVALID_PAGE_SIZE", [("page_size", "must not be negative")])
    size = min(page_size or DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE)
    start = 0
    if page_token:
        try:
            start = int(base64.urlsafe_b64decode(page_token.encode()).decode())
        except Exception:
            raise invalid("INVALID_PAGE_TOKEN", [("page_token", "is not a token this server issued")]) from None
    it: Iterator[X] = iter(items)
    chunk = list(islice(it, start, start + size + 1))
    more = len(chunk) > size
    token = base64.urlsafe_b64encode(str(start + size).encode()).decode() if more else ""
    return chunk[:size], token
