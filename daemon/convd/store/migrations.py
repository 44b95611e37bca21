"""The database schema, as an ordered list of migrations keyed by ``PRAGMA user_version``."""

from __future__ import annotations

from typing import Final

__all__ = ["MIGRATIONS", "SCHEMA_VERSION"]

# Each entry moves the schema from version N to N + 1. Never edit a released entry; append.
MIGRATIONS: Final[tuple[str, ...]] = (
    """
    CREATE TABLE account (
        id          INTEGER PRIMARY KEY,
        sdk_app_id  INTEGER NOT NULL,
        user_id     TEXT    NOT NULL,
        -- the account's change sequence: advanced by every committed change
        last_seq    INTEGER NOT NULL DEFAULT 0,
        -- changes with seq <= pruned_seq were dropped from the change table
        pruned_seq  INTEGER NOT NULL DEFAULT 0,
        UNIQUE (sdk_app_id, user_id)
    ) STRICT;

    CREATE TABLE conversation (
        account_id        INTEGER NOT NULL REFERENCES account (id),
        conv_type         INTEGER NOT NULL,
        conv_id           TEXT    NOT NULL,
        order_key         INTEGER NOT NULL,
        is_pinned         INTEGER NOT NULL DEFAULT 0,
        -- order_key with bit 62 set while pinned: the list's one sort key
        active_time       INTEGER NOT NULL,
        unread_num        INTEGER NOT NULL DEFAULT 0,
        draft_texts       TEXT,             -- JSON array of strings; NULL: no draft
        draft_user_define TEXT,
        draft_edit_time   INTEGER,
        draft_revision    INTEGER NOT NULL DEFAULT 0,
        PRIMARY KEY (account_id, conv_type, conv_id)
    ) STRICT, WITHOUT ROWID;

    CREATE INDEX conversation_by_active_time ON conversation (account_id, active_time DESC);

    CREATE TABLE change (
        account_id INTEGER NOT NULL REFERENCES account (id),
        seq        INTEGER NOT NULL,
        kind       INTEGER NOT NULL,
        conv_type  INTEGER NOT NULL,
        conv_id    TEXT    NOT NULL,
        snapshot   BLOB,                    -- the conversation after the change; NULL: deleted
        origin     TEXT    NOT NULL,
        PRIMARY KEY (account_id, seq)
    ) STRICT, WITHOUT ROWID;
    """,
)

SCHEMA_VERSION: Final = len(MIGRATIONS)
