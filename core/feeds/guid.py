"""``podcast:guid``: the feed's permanent identity (Podcasting 2.0).

A UUIDv5 in the Podcast Index namespace over the feed URL with its scheme and trailing slashes
removed, so ``https://podnews.net/rss/`` and ``http://podnews.net/rss`` name the same show. Compute
it once, when the show is created, and store it: it must not change if the feed later moves.
"""

from __future__ import annotations

import re
import uuid
from typing import Final

from core.errors import InvalidFeed

#: The Podcast Index's namespace for ``podcast:guid`` values.
PODCAST_GUID_NAMESPACE: Final = uuid.UUID("ead4c236-bf58-58c6-a2c6-a6b28d128cb6")

_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")


def podcast_guid(feed_url: str) -> str:
    """The ``podcast:guid`` for ``feed_url`` (``podnews.net/rss`` → ``9b024349-…``)."""
    name = _SCHEME.sub("", feed_url.strip(), count=1).rstrip("/")
    if not name:
        raise InvalidFeed("feed_url", "a feed URL is needed to derive podcast:guid")
    return str(uuid.uuid5(PODCAST_GUID_NAMESPACE, name))
