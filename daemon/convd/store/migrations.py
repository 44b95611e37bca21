"""The database schema, as an ordered list of migrations keyed by ``PRAGMA user_version``."""

from __future__ import annotations

import sqlite3
from typing import Final

import msgspec

from ..domain import Draft
from .writer import draft_document

__all__ = [
    "APPLICATION_ID",
    "CONVD_TABLES",
    "MIGRATIONS",
    "NEW_HISTORY_ID",
    "SCHEMA_VERSION",
    "register_functions",
]

#: ``PRAGMA application_id`` of every convd database (since schema version 3): "conv" in
#: ASCII. It marks a file as convd's, so that another application's SQLite database is
#: never taken over (``file(1)`` and ``sqlite3 .dbinfo`` show it too).
APPLICATION_ID: Final = 0x636F6E76

#: The tables a convd database has from schema version 1 on.
CONVD_TABLES: Final = frozenset({"account", "conversation", "change"})

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
    # 2: a random id for this database's change history. Seqs are only comparable within one
    # history: a database that was recreated or restored gets a new id, so a client resuming
    # with an old seq is told to reload instead of silently missing changes.
    """
    CREATE TABLE meta (
        key   TEXT PRIMARY KEY,
        value TEXT NOT NULL
    ) STRICT, WITHOUT ROWID;

    INSERT INTO meta (key, value) VALUES ('history_id', lower(hex(randomblob(16))));
    """,
    # 3: the file says it is convd's (application_id), and each account keeps its conversation
    # count, so daemon.status reads a few rows instead of counting every conversation. The
    # BEFORE INSERT trigger counts only rows that are new: INSERT OR REPLACE / upserts of an
    # existing conversation leave the count alone (REPLACE's implicit delete fires no delete
    # trigger while recursive_triggers is off, SQLite's default, which convd keeps).
    f"""
    PRAGMA application_id = {APPLICATION_ID};

    ALTER TABLE account ADD COLUMN conversations INTEGER NOT NULL DEFAULT 0;
    UPDATE account SET conversations =
        (SELECT count(*) FROM conversation WHERE conversation.account_id = account.id);

    CREATE TRIGGER conversation_counted BEFORE INSERT ON conversation
    WHEN NOT EXISTS (
        SELECT 1 FROM conversation
        WHERE account_id = NEW.account_id AND conv_type = NEW.conv_type AND conv_id = NEW.conv_id
    )
    BEGIN
        UPDATE account SET conversations = conversations + 1 WHERE id = NEW.account_id;
    END;

    CREATE TRIGGER conversation_uncounted AFTER DELETE ON conversation
    BEGIN
        UPDATE account SET conversations = conversations - 1 WHERE id = OLD.account_id;
    END;
    """,
    # 4: draft revisions survive delete and re-create. A client may keep a conversation's
    # `conv_draft_revision` for as long as it likes (to pass back as `if_revision`), so a
    # conversation created again must start above every revision the deleted one had.
    # `deleted_conversation` keeps the last revision of each deleted conversation, at most as
    # many as the change history keeps changes (older ones are pruned by `deleted_seq`);
    # `account.revision_floor` is the highest revision pruned from it (-1: none), which every
    # conversation not found there starts above. An account that may have deleted
    # conversations before this version (its change history shows a delete, or was pruned)
    # gets its change sequence as the floor: a revision grows by one per change at most, so
    # no conversation can have had a higher one.
    """
    ALTER TABLE account ADD COLUMN revision_floor INTEGER NOT NULL DEFAULT -1;
    UPDATE account SET revision_floor = last_seq
    WHERE pruned_seq > 0
       OR EXISTS (SELECT 1 FROM change WHERE change.account_id = account.id AND change.kind = 1);

    CREATE TABLE deleted_conversation (
        account_id    INTEGER NOT NULL REFERENCES account (id),
        conv_type     INTEGER NOT NULL,
        conv_id       TEXT    NOT NULL,
        last_revision INTEGER NOT NULL,   -- its draft revision when it was deleted
        deleted_seq   INTEGER NOT NULL,   -- the change that deleted it
        PRIMARY KEY (account_id, conv_type, conv_id)
    ) STRICT, WITHOUT ROWID;

    CREATE INDEX deleted_conversation_by_seq ON deleted_conversation (account_id, deleted_seq);
    """,
    # 5: when each change was committed (Unix seconds), so that the history kept for resuming
    # subscribers can be bounded by age as well as by count (--keep-changes-for). Changes from
    # before this version count as old.
    """
    ALTER TABLE change ADD COLUMN changed_at INTEGER NOT NULL DEFAULT 0;
    """,
    # 6: list pages read conversations in their stored order. The table is clustered by the
    # list's sort key (account_id, active_time), so a page is one range of the b-tree instead
    # of an index walk plus a primary-key search per row; the key (type, id) gets a unique
    # index. active_time is unique within an account: its order key is the seq of the
    # conversation's last activation. The draft is stored as one document, the SDK's
    # json_draft_param (what ConvInfo.conv_draft carries), so a list page embeds it as stored.
    # convd_draft_document is the writer's own encoder (register_functions): SQLite's JSON
    # functions would cut a text at a NUL character.
    """
    CREATE TABLE conversation_v6 (
        account_id     INTEGER NOT NULL REFERENCES account (id),
        active_time    INTEGER NOT NULL,  -- order_key, with bit 62 set while pinned
        conv_type      INTEGER NOT NULL,
        conv_id        TEXT    NOT NULL,
        order_key      INTEGER NOT NULL,
        is_pinned      INTEGER NOT NULL DEFAULT 0,
        unread_num     INTEGER NOT NULL DEFAULT 0,
        draft          BLOB,              -- the SDK's json_draft_param JSON; NULL: no draft
        draft_revision INTEGER NOT NULL DEFAULT 0,
        PRIMARY KEY (account_id, active_time)
    ) STRICT, WITHOUT ROWID;

    INSERT INTO conversation_v6
    SELECT account_id, active_time, conv_type, conv_id, order_key, is_pinned, unread_num,
        convd_draft_document(draft_texts, draft_user_define, draft_edit_time),
        draft_revision
    FROM conversation;

    DROP TABLE conversation;
    ALTER TABLE conversation_v6 RENAME TO conversation;

    CREATE UNIQUE INDEX conversation_by_key ON conversation (account_id, conv_type, conv_id);

    CREATE TRIGGER conversation_counted BEFORE INSERT ON conversation
    WHEN NOT EXISTS (
        SELECT 1 FROM conversation
        WHERE account_id = NEW.account_id AND conv_type = NEW.conv_type AND conv_id = NEW.conv_id
    )
    BEGIN
        UPDATE account SET conversations = conversations + 1 WHERE id = NEW.account_id;
    END;

    CREATE TRIGGER conversation_uncounted AFTER DELETE ON conversation
    BEGIN
        UPDATE account SET conversations = conversations - 1 WHERE id = OLD.account_id;
    END;
    """,
    # 7: each conversation's custom data (the SDK's TIMConvSetConversationCustomData /
    # V2 setConversationCustomData): at most 256 bytes of UTF-8, "" when none was set.
    """
    ALTER TABLE conversation ADD COLUMN custom_data TEXT NOT NULL DEFAULT '';
    """,
    # 8: draft history (issue 9 section 3). Every change of a draft keeps the draft it
    # replaced (never "no draft"): its text, user define and edit time, the revision it had,
    # and when, by whom (the change's origin) and how (set / cancel / restore) it was
    # replaced. Bounded per conversation by count and age (convd --draft-history,
    # --draft-history-for), pruned in the writing transaction; deleted with its conversation.
    # The primary key lists a conversation's versions newest first; the age index prunes an
    # account's expired versions. A rowid table, not WITHOUT ROWID: a row holds up to 12 KiB
    # of text and 64 KiB of user define, too large for WITHOUT ROWID's b-tree pages.
    """
    CREATE TABLE draft_history (
        account_id        INTEGER NOT NULL REFERENCES account (id),
        conv_type         INTEGER NOT NULL,
        conv_id           TEXT    NOT NULL,
        revision          INTEGER NOT NULL,   -- its draft revision while it was current
        draft_texts       TEXT    NOT NULL,   -- JSON array of strings
        draft_user_define TEXT    NOT NULL,
        draft_edit_time   INTEGER NOT NULL,
        replaced_at       INTEGER NOT NULL,   -- Unix seconds
        replaced_by       TEXT    NOT NULL,   -- origin of the change that replaced it
        replaced_how      TEXT    NOT NULL,   -- 'set', 'cancel' or 'restore'
        PRIMARY KEY (account_id, conv_type, conv_id, revision)
    ) STRICT;

    CREATE INDEX draft_history_by_age ON draft_history (account_id, replaced_at);
    """,
)

#: Gives a database a new change history (``convd restore`` runs it on the installed copy).
NEW_HISTORY_ID = "UPDATE meta SET value = lower(hex(randomblob(16))) WHERE key = 'history_id'"

SCHEMA_VERSION: Final = len(MIGRATIONS)


_texts_decoder = msgspec.json.Decoder(tuple[str, ...])


def _draft_document(
    texts: str | None, user_define: str | None, edit_time: int | None
) -> bytes | None:
    """Schema 5's three draft columns as schema 6's one document (None: no draft)."""
    if texts is None:
        return None
    return draft_document(Draft(_texts_decoder.decode(texts), user_define or "", edit_time or 0))


def register_functions(connection: sqlite3.Connection) -> None:
    """Give ``connection`` the SQL functions that MIGRATIONS call; run it before them."""
    connection.create_function("convd_draft_document", 3, _draft_document, deterministic=True)
