"""Bounds that every convd peer can rely on. The daemon enforces them; clients may check early."""

from __future__ import annotations

from typing import Final

__all__ = [
    "DEFAULT_DRAFT_HISTORY",
    "DEFAULT_DRAFT_HISTORY_SECONDS",
    "DEFAULT_PAGE_SIZE",
    "MAX_BATCH_CONVS",
    "MAX_BATCH_SIZE",
    "MAX_CONV_GROUPS",
    "MAX_CONV_GROUP_NAME_BYTES",
    "MAX_CUSTOM_DATA_BYTES",
    "MAX_DRAFT_ELEMENTS",
    "MAX_DRAFT_HISTORY",
    "MAX_DRAFT_TEXT_BYTES",
    "MAX_GET_CONVS",
    "MAX_GROUP_ID_BYTES",
    "MAX_INT",
    "MAX_LINE_BYTES",
    "MAX_PAGE_SIZE",
    "MAX_PINNED",
    "MAX_SUBSCRIPTIONS",
    "MAX_USER_DEFINE_CHARS",
    "MAX_USER_ID_BYTES",
]

#: Longest accepted request line, newline excluded. Longer lines get -32600 and the
#: connection is closed (a stream cannot be resynchronised inside an unterminated line).
MAX_LINE_BYTES: Final = 1024 * 1024
#: Largest integer any param may carry: SQLite stores signed 64-bit integers.
MAX_INT: Final = 2**63 - 1
#: Most subscriptions one connection may hold at once.
MAX_SUBSCRIPTIONS: Final = 16
#: Most entries in one JSON-RPC batch.
MAX_BATCH_SIZE: Final = 100
#: Default and largest ``count`` of one ``conv.list`` page.
DEFAULT_PAGE_SIZE: Final = 100
MAX_PAGE_SIZE: Final = 1000
#: Most conversations one ``conv.get`` may name (the SDK's batch limit).
MAX_GET_CONVS: Final = 100
#: Most pinned conversations per account (the SDK's limit).
MAX_PINNED: Final = 50
#: SDK identifier limits: printable ASCII, at most this many bytes.
MAX_USER_ID_BYTES: Final = 32
MAX_GROUP_ID_BYTES: Final = 48
#: Most text of one draft: the SDK's message body limit (12 KB, ERR_SDK_MSG_BODY_SIZE_LIMIT
#: 8001), counted as the UTF-8 bytes of all its text elements together (``draft_user_define``
#: not included). A longer draft could never be sent, so it is refused with 8001.
MAX_DRAFT_TEXT_BYTES: Final = 12 * 1024
#: Other draft bounds (the SDK documents none; these keep one draft well inside one line).
MAX_DRAFT_ELEMENTS: Final = 32
MAX_USER_DEFINE_CHARS: Final = 64 * 1024
#: Most conversations one batch call (``conv.delete_many``, ``conv.set_custom_data``) may
#: name: the SDK's limit for ``deleteConversationList`` and ``setConversationCustomData``.
MAX_BATCH_CONVS: Final = 100
#: Largest custom data of one conversation, in UTF-8 bytes (the SDK's limit).
MAX_CUSTOM_DATA_BYTES: Final = 256
#: Draft history (issue 9 section 3): the versions of a draft kept per conversation by
#: default (``convd --draft-history``), their default age bound (``--draft-history-for``),
#: and the most that can be kept or asked for in one ``conv.draft_history``.
DEFAULT_DRAFT_HISTORY: Final = 20
DEFAULT_DRAFT_HISTORY_SECONDS: Final = 30 * 86400
MAX_DRAFT_HISTORY: Final = 1000
#: Most conversation groups per account (ERR_SVR_CONV_CONV_GROUP_TOTAL_COUNT_EXCEED_LIMIT 51010).
MAX_CONV_GROUPS: Final = 20
#: Longest conversation group name, in UTF-8 bytes (ERR_SVR_CONV_CONV_GROUP_NAME_EXCEED_LENGTH
#: 51011); a name is at least one byte.
MAX_CONV_GROUP_NAME_BYTES: Final = 32
