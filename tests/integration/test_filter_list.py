"""conv.list_by_filter against the real daemon: every filter, combined filters, and paging
with conv.list's cursor semantics."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from support import DaemonProcess, LineClient, text_draft

C2C, GROUP = 1, 2
STAR, FOLD = 0x1, 0x4


def _key(conv_id: str, conv_type: int = C2C) -> dict[str, Any]:
    return {"conv_id": conv_id, "conv_type": conv_type}


def _ids(client: LineClient, page_size: int = 100, **flt: Any) -> list[str]:
    """Every conversation the filter gives, paging through it."""
    found: list[str] = []
    next_seq = 0
    filt = {f"conversation_list_filter_{k}": v for k, v in flt.items()}
    while True:
        page = client.call(
            "conv.list_by_filter", {"filter": filt, "next_seq": next_seq, "count": page_size}
        )
        found += [c["conv_id"] for c in page["conversation_list_result_conv_list"]]
        if page["conversation_list_result_is_finished"]:
            return found
        next_seq = page["conversation_list_result_next_seq"]


@pytest.fixture
def populated(daemon: DaemonProcess) -> Iterator[LineClient]:
    with daemon.client() as client:
        yield _populate(client)


def _populate(client: LineClient) -> LineClient:
    # Newest last: the list shows g3 u4 g2 u3 g1 u2 u1 ... (created in this order).
    for conv_id, conv_type in [
        ("u1", C2C),
        ("u2", C2C),
        ("g1", GROUP),
        ("u3", C2C),
        ("g2", GROUP),
        ("u4", C2C),
        ("g3", GROUP),
    ]:
        client.call("conv.create", _key(conv_id, conv_type))
    client.call(
        "conv.mark",
        {"convs": [_key("u1"), _key("g2", GROUP)], "mark_type": STAR, "enable_mark": True},
    )
    client.call(
        "conv.mark", {"convs": [_key("u1"), _key("u4")], "mark_type": FOLD, "enable_mark": True}
    )
    client.call(
        "conv.group_create",
        {"group_name": "work", "convs": [_key("u2"), _key("g1", GROUP), _key("u4")]},
    )
    client.call("conv.set_draft", {"conv_id": "u3", "conv_type": C2C, "draft": text_draft("x")})
    client.call("conv.set_draft", {"conv_id": "g1", "conv_type": GROUP, "draft": text_draft("y")})
    client.call("conv.pin", {"conv_id": "u2", "conv_type": C2C, "is_pinned": True})
    return client


def test_no_filter_is_the_whole_list(populated: LineClient) -> None:
    whole = [
        c["conv_id"] for c in populated.call("conv.list", {})["conversation_list_result_conv_list"]
    ]
    assert whole == ["u2", "g1", "u3", "g3", "u4", "g2", "u1"]
    assert _ids(populated) == whole


def test_each_filter(populated: LineClient) -> None:
    assert _ids(populated, conv_type=GROUP) == ["g1", "g3", "g2"]
    assert _ids(populated, conv_type=C2C) == ["u2", "u3", "u4", "u1"]
    assert _ids(populated, mark_type=STAR) == ["g2", "u1"]
    assert _ids(populated, mark_type=FOLD) == ["u4", "u1"]
    assert _ids(populated, mark_type=STAR | FOLD) == ["u1"]
    assert _ids(populated, mark_type=0) == ["u2", "g1", "u3", "g3"]
    assert _ids(populated, mark_type=1 << 40) == []
    assert _ids(populated, conversation_group="work") == ["u2", "g1", "u4"]
    assert _ids(populated, conversation_group="") == ["u3", "g3", "g2", "u1"]
    assert _ids(populated, conversation_group="nope") == []
    assert _ids(populated, conversation_group="x" * 40) == []
    assert _ids(populated, has_draft=True) == ["g1", "u3"]
    assert _ids(populated, has_draft=False) == ["u2", "g3", "u4", "g2", "u1"]
    assert _ids(populated, has_unread_count=True) == []
    assert _ids(populated, has_group_at_info=True) == []
    assert _ids(populated, has_unread_count=False, has_group_at_info=False) == _ids(populated)


def test_combined_filters(populated: LineClient) -> None:
    assert _ids(populated, conversation_group="work", conv_type=C2C) == ["u2", "u4"]
    assert _ids(populated, conversation_group="work", mark_type=FOLD) == ["u4"]
    assert _ids(populated, conversation_group="work", has_draft=True) == ["g1"]
    assert _ids(populated, mark_type=STAR, conv_type=GROUP) == ["g2"]
    assert _ids(populated, mark_type=0, conversation_group="", conv_type=GROUP) == ["g3"]
    assert _ids(populated, has_draft=False, mark_type=0) == ["u2", "g3"]


@pytest.mark.parametrize("page_size", [1, 2, 3])
def test_pages_follow_conv_list_cursor_semantics(populated: LineClient, page_size: int) -> None:
    assert _ids(populated, page_size, conv_type=C2C) == ["u2", "u3", "u4", "u1"]
    assert _ids(populated, page_size, conversation_group="work") == ["u2", "g1", "u4"]
    assert _ids(populated, page_size, mark_type=0) == ["u2", "g1", "u3", "g3"]
    page = populated.call(
        "conv.list_by_filter",
        {"filter": {"conversation_list_filter_conv_type": GROUP}, "count": 2},
    )
    assert (
        page["conversation_list_result_next_seq"]
        == (page["conversation_list_result_conv_list"][-1]["conv_active_time"])
    )
    assert page["conversation_list_result_is_finished"] is False


def test_activation_moves_a_conversation_in_its_filtered_lists(populated: LineClient) -> None:
    populated.call("conv.set_draft", {"conv_id": "u1", "conv_type": C2C, "draft": text_draft("z")})
    assert _ids(populated, mark_type=FOLD) == ["u1", "u4"]
    populated.call("conv.set_draft", {"conv_id": "u4", "conv_type": C2C, "draft": text_draft("w")})
    assert _ids(populated, conversation_group="work") == ["u2", "u4", "g1"]


def test_bad_filters(populated: LineClient) -> None:
    error = populated.error("conv.list_by_filter", {"filter": {"conversation_list_filter_x": 1}})
    assert error["code"] == -32602
    error = populated.error("conv.list_by_filter", {"count": 1001})
    assert error["code"] == -32602
    error = populated.error(
        "conv.list_by_filter", {"filter": {"conversation_list_filter_mark_type": 1 << 64}}
    )
    assert error["code"] == 6017


def test_login_is_required(daemon: DaemonProcess) -> None:
    with daemon.client(user=None) as client:
        assert client.error("conv.list_by_filter", {})["code"] == 6014
