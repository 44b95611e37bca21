from __future__ import annotations

from support import DaemonProcess


def test_login_create_and_list(daemon: DaemonProcess) -> None:
    with daemon.client() as client:
        info = client.call("conv.create", {"conv_id": "Windows-02", "conv_type": 1})
        assert info["conv_id"] == "Windows-02"
        page = client.call("conv.list")
        assert [c["conv_id"] for c in page["conversation_list_result_conv_list"]] == ["Windows-02"]
