"""The database schema, as an ordered list of migrations keyed by ``PRAGMA user_version``."""

from __future__ import annotations

import sqlite3
from typing import Final

__all__ = [
    "APPLICATION_ID",
    "CONVD_TABLES",
    "LIST_KEY_ACCOUNT_SHIFT",
    "LIST_KEY_MAX_ACCOUNT",
    "LIST_KEY_MAX_ORDER",
    "LIST_KEY_PINNED_SHIFT",
    "MIGRATIONS",
    "NEW_HISTORY_ID",
    "SCHEMA_VERSION",
    "list_key_sql",
    "register_functions",
]

#: ``PRAGMA application_id`` of every convd database (since schema version 3): "conv" in
#: ASCII. It marks a file as convd's, so that another application's SQLite database is
#: never taken over (``file(1)`` and ``sqlite3 .dbinfo`` show it too).
APPLICATION_ID: Final = 0x636F6E76

#: A conversation's ``active_time``: its order key, with this bit set while it is pinned (the
#: domain's PINNED_BIT; this module stays free of the domain's imports for start-up's check).
_PINNED_BIT: Final = 1 << 62
#: Schema 12's ``list_key``, a conversation's place in the list as one integer:
#: ``account_id << LIST_KEY_ACCOUNT_SHIFT | pinned << LIST_KEY_PINNED_SHIFT | order_key``,
#: ordered as (account_id, active_time) is. (store.writer.list_key computes it in Python.)
LIST_KEY_ACCOUNT_SHIFT: Final = 42
LIST_KEY_PINNED_SHIFT: Final = 41
LIST_KEY_MAX_ORDER: Final = (1 << LIST_KEY_PINNED_SHIFT) - 1
#: The highest account id a list key can hold: one less than would fit in 63 bits, so that the
#: end of the last account's range of keys (the next account's first key) fits too.
LIST_KEY_MAX_ACCOUNT: Final = (1 << (63 - LIST_KEY_ACCOUNT_SHIFT)) - 2


def list_key_sql(account_keys: str, active_time: str) -> str:
    """SQL for the list key of the conversation at ``active_time`` (an SQL expression) of the
    account whose first list key is ``account_keys`` (an SQL expression)."""
    return (
        f"({account_keys} | (({active_time} >> 62) << {LIST_KEY_PINNED_SHIFT})"
        f" | ({active_time} & {LIST_KEY_MAX_ORDER}))"
    )


_LIST_KEY_SQL: Final = list_key_sql(f"(account_id << {LIST_KEY_ACCOUNT_SHIFT})", "active_time")

#: The tables a convd database has from schema version 1 on.
CONVD_TABLES: Final = frozenset({"account", "conversation", "change"})

#: Every bit a conversation mark can be (the SDK's 0x1, 0x2, 0x4, 0x8, and 1 << n for
#: 32 <= n < 64), as SQLite's signed 64-bit integers, for schema version 6's ``mark_bit``.
_MARK_BITS: Final = ", ".join(
    f"({bit - (1 << 64) if bit >= 1 << 63 else bit})"
    for bit in (1, 2, 4, 8, *(1 << n for n in range(32, 64)))
)

# Definitions that several steps create (a table rebuild drops them with the table): each
# step creates them as they read here, so that schema 12 recreates exactly what schema 11 had.

#: The triggers that keep each account's conversation count (schema 3, again 6 and 12).
_CONVERSATION_COUNTING: Final = """\
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
"""

#: The partial indexes of the filtered list's few (schema 9, again 12).
_FILTER_INDEXES: Final = """\
    CREATE INDEX conversation_groups_in_order ON conversation (account_id, active_time DESC)
        WHERE conv_type = 2;
    CREATE INDEX conversation_drafts_in_order ON conversation (account_id, active_time DESC)
        WHERE draft IS NOT NULL;
"""


def _tag_rows_deleted(row: str) -> str:
    """Trigger statements: the mark and group-member rows of conversation ``row`` (OLD or
    NEW) go."""
    key = (
        f"WHERE account_id = {row}.account_id AND conv_type = {row}.conv_type "
        f"AND conv_id = {row}.conv_id;"
    )
    return f"""\
        DELETE FROM conversation_mark
        {key}
        DELETE FROM conversation_group_member
        {key}
"""


#: A trigger statement: NEW's mark rows, one per mark bit it carries.
_MARK_ROWS_INSERTED: Final = """\
        INSERT INTO conversation_mark (account_id, conv_type, conv_id, mark, active_time)
        SELECT NEW.account_id, NEW.conv_type, NEW.conv_id, bit, NEW.active_time
        FROM mark_bit WHERE (NEW.marks & bit) != 0;
"""
#: A trigger statement: NEW's group-member rows, one per group of its that exists.
_GROUP_ROWS_INSERTED: Final = """\
        INSERT INTO conversation_group_member
            (account_id, conv_type, conv_id, group_id, active_time)
        SELECT NEW.account_id, NEW.conv_type, NEW.conv_id, g.id, NEW.active_time
        FROM json_each(NEW.conv_groups) AS j
        JOIN conversation_group AS g ON g.account_id = NEW.account_id AND g.name = j.value;
"""

#: The triggers that derive a conversation's mark and group-member rows (schema 9, again 12):
#: an update is the old row's going and the new row's coming.
_TAG_TRIGGERS: Final = f"""\
    CREATE TRIGGER conversation_tags_replaced BEFORE INSERT ON conversation
    WHEN EXISTS (
        SELECT 1 FROM conversation
        WHERE account_id = NEW.account_id AND conv_type = NEW.conv_type AND conv_id = NEW.conv_id
          AND (marks != 0 OR conv_groups IS NOT NULL)
    )
    BEGIN
{_tag_rows_deleted("NEW")}    END;

    CREATE TRIGGER conversation_marks_indexed AFTER INSERT ON conversation
    WHEN NEW.marks != 0
    BEGIN
{_MARK_ROWS_INSERTED}    END;

    CREATE TRIGGER conversation_groups_indexed AFTER INSERT ON conversation
    WHEN NEW.conv_groups IS NOT NULL
    BEGIN
{_GROUP_ROWS_INSERTED}    END;

    CREATE TRIGGER conversation_tags_updated AFTER UPDATE ON conversation
    WHEN OLD.marks != 0 OR OLD.conv_groups IS NOT NULL
      OR NEW.marks != 0 OR NEW.conv_groups IS NOT NULL
    BEGIN
{_tag_rows_deleted("OLD")}{_MARK_ROWS_INSERTED}{_GROUP_ROWS_INSERTED}    END;

    CREATE TRIGGER conversation_tags_deleted AFTER DELETE ON conversation
    WHEN OLD.marks != 0 OR OLD.conv_groups IS NOT NULL
    BEGIN
{_tag_rows_deleted("OLD")}    END;
"""

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

{_CONVERSATION_COUNTING}    """,
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
    f"""
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

{_CONVERSATION_COUNTING}    """,
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
    # The table is clustered by its primary key, so a conversation's versions sit together:
    # keeping one and pruning the oldest touch the same page (a rowid table scattered them,
    # and every write wrote twice the pages). Large rows spill to overflow pages, as in the
    # conversation table. The age index prunes an account's expired versions.
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
    ) STRICT, WITHOUT ROWID;

    CREATE INDEX draft_history_by_age ON draft_history (account_id, replaced_at);
    """,
    # 9: marks, conversation groups, and the indexes of the filtered list. A conversation's
    # marks are a bitmask column (the SDK's uint64, stored as the signed 64-bit integer with
    # the same bits) and its group names a JSON array column (NULL: in no group), so a list
    # page reads them from the row. A filter for the few reads an index in list order
    # (active_time DESC): group conversations, conversations with a draft, and, for one mark
    # or one conversation group, the rows of `conversation_mark` / `conversation_group_member`,
    # which carry the conversation's active_time. A filter for the many (C2C, without a draft,
    # unmarked, in no group) reads the table itself in list order, skipping the few: an index
    # of nearly every conversation would cost every write pages (its entry moves with each
    # activation), and the SDK allows at most 1000 marked or grouped conversations (51008).
    # Triggers derive those rows from the conversation row on
    # every write of it, so no write path can leave them stale: an insert (or INSERT OR
    # REPLACE) fires the INSERT triggers, and the writer's upsert fires BEFORE INSERT (which
    # drops the old rows while the old row is still there) and then, on the key's conflict,
    # the UPDATE trigger, which derives them again. A conversation without marks or groups
    # costs one probe of its own row.
    f"""
    ALTER TABLE conversation ADD COLUMN marks INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE conversation ADD COLUMN conv_groups TEXT;  -- JSON array of names; NULL: none

    CREATE TABLE conversation_group (
        id         INTEGER PRIMARY KEY,
        account_id INTEGER NOT NULL REFERENCES account (id),
        name       TEXT    NOT NULL,
        UNIQUE (account_id, name)
    ) STRICT;

    CREATE TABLE conversation_group_member (
        account_id  INTEGER NOT NULL,
        conv_type   INTEGER NOT NULL,
        conv_id     TEXT    NOT NULL,
        group_id    INTEGER NOT NULL REFERENCES conversation_group (id),
        active_time INTEGER NOT NULL,   -- the conversation's, kept by the triggers below
        PRIMARY KEY (account_id, conv_type, conv_id, group_id)
    ) STRICT, WITHOUT ROWID;
    CREATE INDEX conversation_group_member_in_order
        ON conversation_group_member (group_id, active_time DESC);

    -- every mark a conversation can carry: bits 0..3 and 32..63
    CREATE TABLE mark_bit (bit INTEGER PRIMARY KEY) STRICT;
    INSERT INTO mark_bit (bit) VALUES {_MARK_BITS};

    CREATE TABLE conversation_mark (
        account_id  INTEGER NOT NULL,
        conv_type   INTEGER NOT NULL,
        conv_id     TEXT    NOT NULL,
        mark        INTEGER NOT NULL,   -- one bit of the conversation's marks
        active_time INTEGER NOT NULL,   -- the conversation's, kept by the triggers below
        PRIMARY KEY (account_id, conv_type, conv_id, mark)
    ) STRICT, WITHOUT ROWID;
    CREATE INDEX conversation_mark_in_order
        ON conversation_mark (account_id, mark, active_time DESC);

{_FILTER_INDEXES}
{_TAG_TRIGGERS}    """,
    # 10: the draft history in the order its versions were kept (a rowid table), with an
    # index by conversation and revision. Clustered by conversation (schema 8), every kept
    # version was an insert at a random place among rows of ~300 bytes: with the age index,
    # ~13 of the ~27 pages a group commit of four writes wrote were the history's. Appended
    # in order, a version costs the table's last page and a small index entry. The expired
    # versions are then the table's first rows, so the age bound needs no index: they are
    # deleted up to the first one still young (store.writer). Reads, restores and the count
    # bound go through the index, as before.
    """
    CREATE TABLE draft_version (
        id                INTEGER PRIMARY KEY,  -- in the order the versions were kept
        account_id        INTEGER NOT NULL REFERENCES account (id),
        conv_type         INTEGER NOT NULL,
        conv_id           TEXT    NOT NULL,
        revision          INTEGER NOT NULL,
        draft_texts       TEXT    NOT NULL,
        draft_user_define TEXT    NOT NULL,
        draft_edit_time   INTEGER NOT NULL,
        replaced_at       INTEGER NOT NULL,
        replaced_by       TEXT    NOT NULL,
        replaced_how      TEXT    NOT NULL
    ) STRICT;
    INSERT INTO draft_version (account_id, conv_type, conv_id, revision, draft_texts,
        draft_user_define, draft_edit_time, replaced_at, replaced_by, replaced_how)
    SELECT account_id, conv_type, conv_id, revision, draft_texts, draft_user_define,
        draft_edit_time, replaced_at, replaced_by, replaced_how
    FROM draft_history ORDER BY replaced_at, account_id, conv_type, conv_id, revision;
    DROP TABLE draft_history;
    ALTER TABLE draft_version RENAME TO draft_history;
    CREATE UNIQUE INDEX draft_history_by_conversation
        ON draft_history (account_id, conv_type, conv_id, revision);
    """,
    # 11: each conversation keeps how a list page shows it (the wire JSON before and after its
    # draft document), so that a page is read, not built: building it from the columns cost
    # ~1.5 us a conversation, three times what reading the rendering costs. The store fills
    # them when it writes a row, and renders every row at start-up whenever meta 'listing'
    # does not name the renderer of the running convd (store.sqlite._render_listing); no
    # meta row, as here, never does.
    """
    ALTER TABLE conversation ADD COLUMN listed_head BLOB NOT NULL DEFAULT X'';
    ALTER TABLE conversation ADD COLUMN listed_tail BLOB NOT NULL DEFAULT X'';
    DELETE FROM meta WHERE key = 'listing';
    """,
    # 12: the conversation table is a rowid table whose rowid is its list order, `list_key`:
    # (account_id, active_time) packed into one integer (LIST_KEY_ACCOUNT_SHIFT above), so
    # the table stays stored in list order (schema 6). Keyed by the two columns (WITHOUT
    # ROWID), every interior cell of its b-tree held a whole row of ~700 bytes, the
    # conversation's rendering included: five to a page, so 100,000 conversations were seven
    # levels deep, and every write, which moves its row to the end of the list, rewrote
    # pages of two such paths: ~10 of the ~28 pages a group commit of four writes wrote. An
    # interior cell is now a rowid: three levels at 100,000. The change history likewise
    # (rows of ~450 bytes, appended at one end and pruned at the other): its rowid is
    # `change_key`, (account_id, seq) packed the same way. The CHECKs keep the packing
    # exact: account ids up to 2**21 - 2 (writer.ensure_account refuses more), order keys and
    # seqs below 2**41 (two trillion changes of one account).
    f"""
    CREATE TABLE conversation_v12 (
        list_key       INTEGER PRIMARY KEY,
        account_id     INTEGER NOT NULL REFERENCES account (id),
        active_time    INTEGER NOT NULL,  -- order_key, with bit 62 set while pinned
        conv_type      INTEGER NOT NULL,
        conv_id        TEXT    NOT NULL,
        order_key      INTEGER NOT NULL,
        is_pinned      INTEGER NOT NULL DEFAULT 0,
        unread_num     INTEGER NOT NULL DEFAULT 0,
        draft          BLOB,              -- the SDK's json_draft_param JSON; NULL: no draft
        draft_revision INTEGER NOT NULL DEFAULT 0,
        custom_data    TEXT    NOT NULL DEFAULT '',
        marks          INTEGER NOT NULL DEFAULT 0,
        conv_groups    TEXT,
        listed_head    BLOB    NOT NULL DEFAULT X'',
        listed_tail    BLOB    NOT NULL DEFAULT X'',
        CONSTRAINT account_id_fits_list_key
            CHECK (account_id BETWEEN 1 AND {LIST_KEY_MAX_ACCOUNT}),
        CONSTRAINT active_time_fits_list_key
            CHECK (active_time BETWEEN 0 AND {_PINNED_BIT | LIST_KEY_MAX_ORDER}
                AND (active_time & ~{_PINNED_BIT}) <= {LIST_KEY_MAX_ORDER}),
        CONSTRAINT list_key_is_the_list_place CHECK (list_key = {_LIST_KEY_SQL})
    ) STRICT;

    INSERT INTO conversation_v12 (list_key, account_id, active_time, conv_type, conv_id,
        order_key, is_pinned, unread_num, draft, draft_revision, custom_data, marks,
        conv_groups, listed_head, listed_tail)
    SELECT {_LIST_KEY_SQL}, account_id, active_time, conv_type, conv_id, order_key, is_pinned,
        unread_num, draft, draft_revision, custom_data, marks, conv_groups, listed_head,
        listed_tail
    FROM conversation ORDER BY account_id, active_time;

    DROP TABLE conversation;
    ALTER TABLE conversation_v12 RENAME TO conversation;

    CREATE UNIQUE INDEX conversation_by_key ON conversation (account_id, conv_type, conv_id);
{_FILTER_INDEXES}
{_CONVERSATION_COUNTING}
{_TAG_TRIGGERS}
    CREATE TABLE change_v12 (
        change_key INTEGER PRIMARY KEY,
        account_id INTEGER NOT NULL REFERENCES account (id),
        seq        INTEGER NOT NULL,
        kind       INTEGER NOT NULL,
        conv_type  INTEGER NOT NULL,
        conv_id    TEXT    NOT NULL,
        snapshot   BLOB,                    -- the conversation after the change; NULL: deleted
        origin     TEXT    NOT NULL,
        changed_at INTEGER NOT NULL DEFAULT 0,
        CONSTRAINT account_id_fits_change_key
            CHECK (account_id BETWEEN 1 AND {LIST_KEY_MAX_ACCOUNT}),
        CONSTRAINT seq_fits_change_key CHECK (seq BETWEEN 0 AND {LIST_KEY_MAX_ORDER}),
        CONSTRAINT change_key_is_the_place
            CHECK (change_key = (account_id << {LIST_KEY_ACCOUNT_SHIFT}) | seq)
    ) STRICT;

    INSERT INTO change_v12 (change_key, account_id, seq, kind, conv_type, conv_id, snapshot,
        origin, changed_at)
    SELECT (account_id << {LIST_KEY_ACCOUNT_SHIFT}) | seq, account_id, seq, kind, conv_type,
        conv_id, snapshot, origin, changed_at
    FROM change ORDER BY account_id, seq;

    DROP TABLE change;
    ALTER TABLE change_v12 RENAME TO change;
    """,
)

#: Gives a database a new change history (``convd restore`` runs it on the installed copy).
NEW_HISTORY_ID = "UPDATE meta SET value = lower(hex(randomblob(16))) WHERE key = 'history_id'"

SCHEMA_VERSION: Final = len(MIGRATIONS)


def _draft_document(
    texts: str | None, user_define: str | None, edit_time: int | None
) -> bytes | None:
    """Schema 5's three draft columns as schema 6's one document (None: no draft)."""
    # Imported here: the start-up's early check (opening.StartedCheck) imports this module
    # for its constants, and must not wait for the writer's imports (msgspec, aiosqlite).
    from .writer import draft_document, draft_from_columns

    if texts is None:
        return None
    return draft_document(draft_from_columns(texts, user_define, edit_time))


def register_functions(connection: sqlite3.Connection) -> None:
    """Give ``connection`` the SQL functions that MIGRATIONS call; run it before them."""
    connection.create_function("convd_draft_document", 3, _draft_document, deterministic=True)
