"""The domain enforces the same limits the wire contract publishes."""

from __future__ import annotations

from convd.domain import Limits
from convd_schemas import limits


def test_domain_limits_match_the_published_ones() -> None:
    assert Limits.max_user_id_bytes == limits.MAX_USER_ID_BYTES
    assert Limits.max_group_id_bytes == limits.MAX_GROUP_ID_BYTES
    assert Limits.max_pinned == limits.MAX_PINNED
