"""Values SQLite or the OS cannot hold are refused as invalid params, not internal errors."""

from __future__ import annotations

from typing import Any

import pytest

from convd_schemas import METHODS
from convd_schemas.limits import MAX_INT, MAX_SUBSCRIPTIONS
from support import DaemonProcess, text_draft

TOO_BIG = 2**64 - 1


@pytest.mark.parametrize(
    ("method", "params"),
    [
        ("session.login", {"user_id": "alice", "sdk_app_id": TOO_BIG}),
        ("conv.list", {"next_seq": TOO_BIG}),
        (
            "conv.set_draft",
            {"conv_id": "bob", "conv_type": 1, "draft": text_draft("x", edit_time=2**63)},
        ),
        (
            "conv.set_draft",
            {"conv_id": "bob", "conv_type": 1, "draft": text_draft("x"), "if_revision": TOO_BIG},
        ),
        ("conv.subscribe", {"since_seq": TOO_BIG}),
        ("conv.unsubscribe", {"subscription": TOO_BIG}),
        ("daemon.backup", {"path": "/tmp/a\u0000b"}),
    ],
)
def test_out_of_range_values_are_invalid_params(
    daemon: DaemonProcess, method: str, params: dict[str, Any]
) -> None:
    with daemon.client() as client:
        response = client.request(method, params)
        assert response["error"]["code"] == -32602, response
        assert "correlation_id" not in str(response)
    assert "Traceback" not in daemon.logs()


def test_the_largest_integer_is_accepted(daemon: DaemonProcess) -> None:
    with daemon.client() as client:
        client.call("session.login", {"user_id": "alice", "sdk_app_id": MAX_INT})
        draft = text_draft("x", edit_time=MAX_INT)
        info = client.call("conv.set_draft", {"conv_id": "bob", "conv_type": 1, "draft": draft})
        assert info["conv_draft"]["draft_edit_time"] == MAX_INT
        page = client.call("conv.list", {"next_seq": MAX_INT})
        assert page["conversation_list_result_conv_list"][0]["conv_id"] == "bob"


def test_subscriptions_per_connection_are_bounded(daemon: DaemonProcess) -> None:
    with daemon.client() as client:
        subscriptions = [client.call("conv.subscribe", {}) for _ in range(MAX_SUBSCRIPTIONS)]
        refused = client.request("conv.subscribe", {})
        assert refused["error"]["code"] == 6017
        assert str(MAX_SUBSCRIPTIONS) in refused["error"]["data"]["detail"]
        # ... as the contract declares it.
        (spec,) = [spec for spec in METHODS if spec.name == "conv.subscribe"]
        assert 6017 in spec.errors
        client.call("conv.unsubscribe", {"subscription": subscriptions[0]["subscription"]})
        assert client.call("conv.subscribe", {})["subscription"] > 0
