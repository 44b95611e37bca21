"""Every code convd can answer is in the contract's table, and each method lists the codes
it can answer; the draft rules' codes (6016, 8001) and the Message levels that accept unknown
keys, as the OpenRPC document publishes them."""

from __future__ import annotations

import msgspec
import pytest

from convd import domain
from convd.rpc import errors as rpc_errors
from convd_schemas import ERROR_TABLE, METHODS, Draft, TIMErrCode
from convd_schemas.limits import MAX_DRAFT_TEXT_BYTES
from convd_schemas.openrpc import build_openrpc


def test_every_code_the_rpc_layer_maps_to_is_in_the_table() -> None:
    for error_class, code in rpc_errors._CODES.items():
        assert code in ERROR_TABLE, error_class


def test_every_code_a_method_lists_is_in_the_table() -> None:
    for spec in METHODS:
        for code in spec.errors:
            assert code in ERROR_TABLE, (spec.name, code)


@pytest.mark.parametrize(
    ("error", "code"),
    [
        (domain.InvalidMessageElement("drafts hold text only"), 6016),
        (domain.DraftTooLarge(12289, 12288), 8001),
        (domain.InvalidParameter("x"), 6017),
    ],
)
def test_draft_rule_errors_map_to_the_sdks_codes(error: domain.DomainError, code: int) -> None:
    wire = rpc_errors.wire_error(error)
    assert wire == {
        "code": code,
        "message": ERROR_TABLE[code].message,
        "data": {"detail": str(error)},
    }


def test_set_draft_lists_the_draft_rule_codes() -> None:
    (set_draft,) = [spec for spec in METHODS if spec.name == "conv.set_draft"]
    assert TIMErrCode.ERR_INVALID_MSG_ELEM in set_draft.errors
    assert TIMErrCode.ERR_SDK_MSG_BODY_SIZE_LIMIT in set_draft.errors
    assert int(TIMErrCode.ERR_INVALID_MSG_ELEM) == 6016
    assert int(TIMErrCode.ERR_SDK_MSG_BODY_SIZE_LIMIT) == 8001
    methods = {m["name"]: m for m in build_openrpc()["methods"]}
    refs = {e["$ref"] for e in methods["conv.set_draft"]["errors"]}
    assert {"#/components/errors/E6016", "#/components/errors/E8001"} <= refs


def test_the_published_text_limit_is_the_one_the_domain_enforces() -> None:
    assert MAX_DRAFT_TEXT_BYTES == domain.Limits.max_draft_text_bytes == 12 * 1024


def test_only_the_message_levels_of_a_draft_accept_unknown_keys() -> None:
    schemas = build_openrpc()["components"]["schemas"]
    assert schemas["Draft"]["additionalProperties"] is False
    assert "additionalProperties" not in schemas["DraftMessage"]
    assert "additionalProperties" not in schemas["MessageElem"]
    message = {
        "message_conv_id": "bob",
        "message_conv_type": 1,
        "message_sender": "alice",
        "message_client_time": 1551271429,
        "message_elem_array": [{"elem_type": 0, "text_elem_content": "hi", "future_key": 1}],
    }
    draft = msgspec.json.decode(msgspec.json.encode({"draft_msg": message}), type=Draft)
    assert [e.text_elem_content for e in draft.draft_msg.message_elem_array] == ["hi"]
    with pytest.raises(msgspec.ValidationError, match="draft_usre_define"):
        msgspec.json.decode(b'{"draft_usre_define": "typo"}', type=Draft)
