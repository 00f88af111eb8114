"""page_size / page_token for list calls (AIP-158), with opaque, checked page tokens.

A token is the URL-safe base64 of 17 bytes: a version byte, the offset of the page's first
item (8 bytes, big endian) and a check (8 bytes), a keyed BLAKE2b digest of the version, the
offset and the listing the token belongs to (its collection, parent and filter). A token
this server did not issue, an altered one, or one from another listing (another job's tasks,
another state filter) is refused: INVALID_ARGUMENT `INVALID_PAGE_TOKEN` naming `page_token`.

The key is fixed, so that tokens stay good across a server restart: the check catches
mistakes and casual forgery, it is not a secret. Nothing depends on it being one: the offset
a token carries is checked against `MAX_OFFSET`, and an offset past the end gives an empty
last page.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from collections.abc import Iterable, Iterator
from itertools import islice
from typing import TypeVar

from shoal.server.api.errors import invalid

DEFAULT_PAGE_SIZE = 1000
MAX_PAGE_SIZE = 5000
#: The largest offset a token may carry (no listing is longer).
MAX_OFFSET = 2**40
TOKEN_VERSION = 1
_KEY = b"shoal page token v1"
_CHECK_BYTES = 8
_TOKEN_BYTES = 1 + 8 + _CHECK_BYTES
X = TypeVar("X")


def _check(version: int, offset: int, listing: str) -> bytes:
    body = bytes([version]) + offset.to_bytes(8, "big") + listing.encode("utf-8", "replace")
    return hashlib.blake2b(body, digest_size=_CHECK_BYTES, key=_KEY).digest()


def encode_token(offset: int, listing: str) -> str:
    """The token for the page of `listing` that starts at `offset`."""
    raw = bytes([TOKEN_VERSION]) + offset.to_bytes(8, "big") + _check(TOKEN_VERSION, offset, listing)
    return base64.urlsafe_b64encode(raw).decode("ascii")


def decode_token(token: str, listing: str) -> int:
    """The offset `token` carries, or INVALID_ARGUMENT INVALID_PAGE_TOKEN when it is not a token of `listing`."""
    bad = invalid(
        "INVALID_PAGE_TOKEN",
        [("page_token", "is not a token from a previous page of this listing (same parent and filter)")],
    )
    if len(token) > 64:
        raise bad
    try:
        raw = base64.b64decode(token.encode("ascii"), altchars=b"-_", validate=True)
    except (ValueError, UnicodeError, binascii.Error):
        raise bad from None
    if len(raw) != _TOKEN_BYTES or raw[0] != TOKEN_VERSION:
        raise bad
    offset = int.from_bytes(raw[1:9], "big")
    if not hmac.compare_digest(raw[9:], _check(TOKEN_VERSION, offset, listing)) or offset > MAX_OFFSET:
        raise bad
    return offset


def page_size_of(page_size: int) -> int:
    """The number of items a page holds: 0 means the default, more than `MAX_PAGE_SIZE` is cut to it."""
    if page_size < 0:
        raise invalid("INVALID_PAGE_SIZE", [("page_size", "must not be negative")])
    return min(page_size or DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE)


def page(items: Iterable[X], page_size: int, page_token: str, listing: str) -> tuple[list[X], str]:
    """One page of `items` and the token for the next ('' at the end).

    `listing` names what is listed, with its parent and filter (`jobs/j1/tasks?state=3`): a token is
    good only for the listing it came from. Both arguments are checked before any item is read.
    """
    size = page_size_of(page_size)
    start = decode_token(page_token, listing) if page_token else 0
    it: Iterator[X] = iter(items)
    chunk = list(islice(it, start, start + size + 1))
    more = len(chunk) > size
    token = encode_token(start + size, listing) if more else ""
    return chunk[:size], token
