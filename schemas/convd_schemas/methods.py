"""Every JSON-RPC method's params and result, and the ``conv.event`` notification.

Params are always by name (a JSON object). Unknown members are rejected (-32602), so a typo
never passes silently.
"""

from __future__ import annotations

from typing import Annotated, Any, TypeAlias

import msgspec

from .enums import TIMConvEvent
from .errors import ConvdErrCode, TIMErrCode
from .limits import (
    DEFAULT_DRAFT_HISTORY,
    DEFAULT_PAGE_SIZE,
    MAX_BATCH_CONVS,
    MAX_CUSTOM_DATA_BYTES,
    MAX_DRAFT_HISTORY,
    MAX_GET_CONVS,
    MAX_INT,
    MAX_PAGE_SIZE,
)
from .types import (
    ConvId,
    ConvInfo,
    ConvKey,
    ConvListFilter,
    ConvOperationResult,
    ConvTypeField,
    Draft,
    GroupName,
    MarkType,
)

__all__ = [
    "METHODS",
    "NOTIFICATIONS",
    "ConvCancelDraftParams",
    "ConvDeleteManyParams",
    "ConvDraftHistoryParams",
    "ConvDraftHistoryResult",
    "ConvEventAdd",
    "ConvEventDel",
    "ConvEventFinish",
    "ConvEventParams",
    "ConvEventStart",
    "ConvEventUpdate",
    "ConvGetParams",
    "ConvGroupAddParams",
    "ConvGroupCreateParams",
    "ConvGroupDeleteParams",
    "ConvGroupEventConversationsAdded",
    "ConvGroupEventConversationsDeleted",
    "ConvGroupEventCreated",
    "ConvGroupEventDeleted",
    "ConvGroupEventNameChanged",
    "ConvGroupEventParams",
    "ConvGroupRemoveParams",
    "ConvGroupRenameParams",
    "ConvKeyParams",
    "ConvListByFilterParams",
    "ConvListParams",
    "ConvListResult",
    "ConvMarkParams",
    "ConvPinParams",
    "ConvRestoreDraftParams",
    "ConvSetCustomDataParams",
    "ConvSetDraftParams",
    "ConvSubscribeParams",
    "ConvSubscribeResult",
    "ConvUnsubscribeParams",
    "DaemonBackupParams",
    "DaemonBackupResult",
    "DaemonStatus",
    "DraftVersion",
    "EmptyParams",
    "EmptyResult",
    "MethodSpec",
    "NotificationSpec",
    "SessionLoginParams",
    "SessionLoginResult",
    "StoreStatus",
]

IfRevision = Annotated[
    int,
    msgspec.Meta(
        ge=0,
        le=MAX_INT,
        description="Write only if the stored `conv_draft_revision` equals this; otherwise "
        "nothing is written and error 90001 carries the current ConvInfo.",
    ),
]


class _Params(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    pass


class EmptyParams(_Params):
    """No parameters."""


class EmptyResult(msgspec.Struct):
    """An empty object: the call succeeded."""


class SessionLoginParams(_Params):
    """Log this connection in as an SDK account (TIMInit + TIMLogin)."""

    user_id: Annotated[
        str, msgspec.Meta(description="The account's user id: 1..32 bytes of printable ASCII.")
    ]
    sdk_app_id: Annotated[int, msgspec.Meta(ge=0, le=MAX_INT, description="The SDK app id.")] = 0


class SessionLoginResult(msgspec.Struct, kw_only=True):
    """The account this connection now acts as."""

    user_id: str
    sdk_app_id: int


class ConvKeyParams(_Params):
    """Names one conversation."""

    conv_id: ConvId
    conv_type: ConvTypeField


class ConvListParams(_Params):
    """One page of the conversation list (TIMConvGetConvList, paged)."""

    next_seq: Annotated[
        int,
        msgspec.Meta(
            ge=0,
            le=MAX_INT,
            description="Opaque cursor: 0 for the first page, then the previous page's "
            "`conversation_list_result_next_seq`.",
        ),
    ] = 0
    count: Annotated[int, msgspec.Meta(ge=1, le=MAX_PAGE_SIZE, description="Page size.")] = (
        DEFAULT_PAGE_SIZE
    )


class ConvListResult(msgspec.Struct, kw_only=True):
    """A page of conversations: pinned first, then most recently activated first."""

    conversation_list_result_conv_list: list[ConvInfo]
    conversation_list_result_next_seq: Annotated[
        int, msgspec.Meta(description="Cursor for the next page.")
    ]
    conversation_list_result_is_finished: Annotated[
        bool, msgspec.Meta(description="True on the last page.")
    ]


class ConvGetParams(_Params):
    """Look up conversations by id and type (TIMConvGetConvInfo); unknown ones are left out."""

    convs: Annotated[list[ConvKey], msgspec.Meta(min_length=1, max_length=MAX_GET_CONVS)]


class ConvSetDraftParams(_Params):
    """Set a conversation's draft (TIMConvSetDraft, V2 setConversationDraft).

    Creates the conversation when it does not exist. A draft with no text and no
    ``draft_user_define`` clears the draft. Writing the draft that is already stored changes
    nothing. Drafts hold text only: any other element answers 6016; text larger than the SDK's
    message body limit (12 KiB of UTF-8 over all text elements) answers 8001.
    ``if_revision`` 0 on a conversation that does not exist means "create only if absent".
    """

    conv_id: ConvId
    conv_type: ConvTypeField
    draft: Draft
    if_revision: IfRevision | msgspec.UnsetType = msgspec.UNSET


class ConvCancelDraftParams(_Params):
    """Clear a conversation's draft (TIMConvCancelDraft). Does not reorder the list."""

    conv_id: ConvId
    conv_type: ConvTypeField
    if_revision: IfRevision | msgspec.UnsetType = msgspec.UNSET


class ConvPinParams(_Params):
    """Pin or unpin a conversation (TIMConvPinConversation); at most 50 are pinned."""

    conv_id: ConvId
    conv_type: ConvTypeField
    is_pinned: bool


class ConvDeleteManyParams(_Params):
    """Delete several conversations and their drafts at once (TIMConvDeleteConversationList,
    V2 deleteConversationList), in one transaction.

    Each conversation named is deleted as ``conv.delete`` deletes one: a Del event each (in the
    order named), and its result in the answer. A conversation named twice is deleted (and
    answered) once. One that does not exist is not an error of the call: its result carries
    6004. An invalid id fails the whole call (7003, 8501, 6017), and nothing is deleted.
    """

    convs: Annotated[
        list[ConvKey],
        msgspec.Meta(
            description=f"The conversations, 1..{MAX_BATCH_CONVS} of them (the SDK's limit); "
            "an empty list or a longer one answers 6017 (ERR_INVALID_PARAMETERS)."
        ),
    ]


class ConvSetCustomDataParams(_Params):
    """Set the custom data of several conversations (TIMConvSetConversationCustomData, V2
    setConversationCustomData), in one transaction.

    Each conversation whose custom data changes gets an Update event (in the order named); its
    place in the list and its draft revision stay as they are (as for a pin). Setting the data a
    conversation already has changes nothing. A conversation named twice is set (and answered)
    once; one that does not exist is not created: its result carries 6004. An invalid id fails
    the whole call (7003, 8501, 6017), and nothing is changed.
    """

    convs: Annotated[
        list[ConvKey],
        msgspec.Meta(
            description=f"The conversations, 1..{MAX_BATCH_CONVS} of them: an empty list "
            "answers 6017, a longer one 51006 (the SDK's limit per custom-data request)."
        ),
    ]
    custom_data: Annotated[
        str,
        msgspec.Meta(
            description=f"The data, at most {MAX_CUSTOM_DATA_BYTES} bytes of UTF-8 (else "
            '6017); "" removes it. Stored as given, opaque to convd.'
        ),
    ]


class ConvDraftHistoryParams(_Params):
    """A conversation's earlier drafts, newest first (convd extension: draft history).

    Every change of a draft (set, clear, restore) keeps the draft it replaced, unless that
    was "no draft": by default the last 20 versions per conversation, none older than 30
    days (``convd --draft-history`` / ``--draft-history-for``). Deleting the conversation
    deletes its history.
    """

    conv_id: ConvId
    conv_type: ConvTypeField
    count: Annotated[
        int,
        msgspec.Meta(
            ge=1, le=MAX_DRAFT_HISTORY, description="At most this many versions, newest first."
        ),
    ] = DEFAULT_DRAFT_HISTORY


class DraftVersion(msgspec.Struct, kw_only=True):
    """One earlier draft of a conversation, as it was before a change replaced it."""

    revision: Annotated[
        int,
        msgspec.Meta(
            description="The `conv_draft_revision` this draft had while it was the current "
            "one: pass it to `conv.restore_draft`."
        ),
    ]
    draft: Annotated[
        Draft, msgspec.Meta(description="The draft (its text, user define, edit time).")
    ]
    replaced_at: Annotated[int, msgspec.Meta(description="Unix seconds when a change replaced it.")]
    replaced_by: Annotated[
        str,
        msgspec.Meta(
            description="The `origin` of the change that replaced it: the id of the "
            "connection that made it, as its `conv.event` carries it."
        ),
    ]
    replaced_how: Annotated[
        str,
        msgspec.Meta(
            description="`set`: another draft was set; `cancel`: the draft was cleared "
            "(`conv.cancel_draft`, or an empty draft); `restore`: an earlier version was "
            "restored over it."
        ),
    ]


class ConvDraftHistoryResult(msgspec.Struct, kw_only=True):
    """The current revision and the earlier drafts of a conversation."""

    conv_draft_revision: Annotated[
        int,
        msgspec.Meta(
            description="The current draft's revision: pass it as `if_revision` to "
            "`conv.restore_draft` to restore only if nobody changed the draft since."
        ),
    ]
    versions: Annotated[
        list[DraftVersion], msgspec.Meta(description="Earlier drafts, newest first.")
    ]


class ConvRestoreDraftParams(_Params):
    """Make an earlier draft the current one again (convd extension: draft history).

    The draft of version ``revision`` becomes the current draft with a new revision and the
    current time as its edit time; the conversation is activated (as by a set) and an Update
    event is sent. The draft it replaces goes into the history too, so a restore can itself
    be undone. Restoring a version whose content equals the current draft (or the current
    revision itself) changes nothing. A revision the history does not hold answers 90006.
    """

    conv_id: ConvId
    conv_type: ConvTypeField
    revision: Annotated[
        int,
        msgspec.Meta(
            ge=0, le=MAX_INT, description="The `revision` of a version from `conv.draft_history`."
        ),
    ]
    if_revision: IfRevision | msgspec.UnsetType = msgspec.UNSET


class ConvSubscribeParams(_Params):
    """Receive this account's conversation events as ``conv.event`` notifications.

    With ``sync``, the events begin with a sync frame, as the SDK frames its server sync
    (kTIMConvEvent_Start / kTIMConvEvent_Finish, V2 ``onSyncServerStart`` /
    ``onSyncServerFinish``). Without ``since_seq`` the frame holds the whole current list:
    Start (``full`` true), then every conversation once as Update events of at most 100
    conversations each, in ``conv.list`` order, then Finish, then the live events. Changes
    committed while the list is read are not lost: a conversation that moved during the sync
    (created, activated, pinned) may come last in the frame, and a change whose result the
    frame already shows is not sent again; the others follow Finish in seq order (one may
    update or delete a conversation the frame showed earlier), and Finish's ``seq`` is the
    resume point. With ``since_seq`` the frame holds the missed changes instead: Start
    (``full`` false), the replay (Dels included), Finish, then the live events.
    """

    since_seq: (
        Annotated[
            int,
            msgspec.Meta(
                ge=0,
                le=MAX_INT,
                description="Resume: first replay every change after this sequence number.",
            ),
        ]
        | msgspec.UnsetType
    ) = msgspec.UNSET
    history: (
        Annotated[
            str,
            msgspec.Meta(
                description="With `since_seq`: the `history` of the subscription being resumed. "
                "When the database was replaced since (restored, recreated), seqs name other "
                "changes, and the resume is refused with 90003 instead of skipping them.",
            ),
        ]
        | msgspec.UnsetType
    ) = msgspec.UNSET
    sync: Annotated[
        bool,
        msgspec.Meta(
            description="Frame the events' start with kTIMConvEvent_Start / _Finish: the "
            "whole current list as Update events (or, with `since_seq`, the replayed changes) "
            "between them."
        ),
    ] = False


class ConvSubscribeResult(msgspec.Struct, kw_only=True):
    """A live subscription."""

    subscription: Annotated[int, msgspec.Meta(description="Names this subscription.")]
    seq: Annotated[
        int, msgspec.Meta(description="The account's change sequence number at subscribe time.")
    ]
    origin: Annotated[
        str,
        msgspec.Meta(
            description="This connection's id, as events carry it in `origin`: a client "
            "recognises the echo of its own changes by it."
        ),
    ]
    history: Annotated[
        str,
        msgspec.Meta(
            description="Names the database's change history that `seq` belongs to; pass it "
            "back with `since_seq` when resuming."
        ),
    ]


class ConvUnsubscribeParams(_Params):
    """End a subscription."""

    subscription: Annotated[int, msgspec.Meta(ge=0, le=MAX_INT)]


class StoreStatus(msgspec.Struct, kw_only=True):
    """The database's durability and counters since the daemon started."""

    durability: Annotated[
        str,
        msgspec.Meta(
            description="`full`: every write is fsynced before it is answered; `everysec`: "
            "written before it is answered, fsynced at least once a second."
        ),
    ]
    writes: Annotated[int, msgspec.Meta(description="Writes run (committed or refused).")]
    write_batches: Annotated[
        int, msgspec.Meta(description="Group commits: transactions that ran those writes.")
    ]
    writer_thread_hops: Annotated[
        int,
        msgspec.Meta(
            description="Times the writer's SQLite thread was woken for work: at most one "
            "per batch, none for a batch that was already waiting when the one before it "
            "committed."
        ),
    ]
    reader_thread_hops: Annotated[
        int, msgspec.Meta(description="Calls into the reader connection's SQLite thread.")
    ]
    wal_restarts: Annotated[
        int,
        msgspec.Meta(
            description="Times the WAL was checkpointed to its end so that writes start it "
            "again from the beginning: once its content has passed 16 MiB (checked after "
            "writes, at most four times a second)."
        ),
    ] = 0  # a default, unlike the others: a newer client reads an older daemon's status


class DaemonStatus(msgspec.Struct, kw_only=True):
    """What the daemon is and how it is doing."""

    version: str
    pid: int
    uptime_seconds: float
    connections: Annotated[int, msgspec.Meta(description="Open client connections.")]
    socket_path: str
    database_path: str
    conversations: Annotated[int, msgspec.Meta(description="Conversations in the database.")]
    store: StoreStatus | msgspec.UnsetType = msgspec.UNSET


class DaemonBackupParams(_Params):
    """Write an online, consistent copy of the whole database (every account) to a file.

    The daemon writes it (as the user it runs as, file mode 0600) while it keeps serving;
    ``convd restore FILE`` installs such a copy while the daemon is stopped.
    """

    path: Annotated[
        str,
        msgspec.Meta(
            min_length=2,
            # Linux's PATH_MAX: a longer path cannot be opened anyway.
            max_length=4096,
            # Absolute, and no NUL byte (no file name can hold one).
            pattern=r"^/[^\x00]*$",
            description="Absolute path of the file to write (the daemon does not know the "
            "client's working directory).",
        ),
    ]
    overwrite: Annotated[
        bool, msgspec.Meta(description="Replace `path` if it exists; otherwise error 90005.")
    ] = False


class DaemonBackupResult(msgspec.Struct, kw_only=True):
    """The backup that was written."""

    path: str
    size_bytes: Annotated[int, msgspec.Meta(description="Size of the backup file.")]
    schema_version: Annotated[
        int, msgspec.Meta(description="The database schema version the backup holds.")
    ]


class _ConvEvent(msgspec.Struct, tag_field="event"):
    subscription: Annotated[int, msgspec.Meta(description="The subscription it belongs to.")]
    seq: Annotated[
        int, msgspec.Meta(description="The account's change sequence; strictly increasing.")
    ]
    origin: Annotated[str, msgspec.Meta(description="Id of the connection that made the change.")]


class ConvEventAdd(_ConvEvent, tag=int(TIMConvEvent.kTIMConvEvent_Add)):
    """``event`` 0 (kTIMConvEvent_Add): a conversation was created."""

    conv_array: list[ConvInfo]


class ConvEventDel(_ConvEvent, tag=int(TIMConvEvent.kTIMConvEvent_Del)):
    """``event`` 1 (kTIMConvEvent_Del): a conversation was deleted; each item holds only its
    ``conv_id`` and ``conv_type``."""

    conv_array: list[ConvKey]


class ConvEventUpdate(_ConvEvent, tag=int(TIMConvEvent.kTIMConvEvent_Update)):
    """``event`` 2 (kTIMConvEvent_Update): a conversation changed (draft, pin, custom data).
    Inside a full sync frame: a page of the current list, with the Start's ``seq`` and
    ``origin`` ``""``."""

    conv_array: list[ConvInfo]


class ConvEventStart(_ConvEvent, tag=int(TIMConvEvent.kTIMConvEvent_Start)):
    """``event`` 3 (kTIMConvEvent_Start): a sync frame begins (``conv.subscribe`` with
    ``sync``); ``origin`` is ``""``. ``full`` true: the whole current list follows, as Update
    events carrying this ``seq`` (the subscription's). ``full`` false: the changes after
    ``seq`` (the ``since_seq`` resumed from) follow, as ordinary events."""

    full: Annotated[
        bool,
        msgspec.Meta(description="True: the whole list follows; false: the missed changes."),
    ]


class ConvEventFinish(_ConvEvent, tag=int(TIMConvEvent.kTIMConvEvent_Finish)):
    """``event`` 4 (kTIMConvEvent_Finish): the sync frame is complete; ``origin`` is ``""``.
    ``seq`` is the resume point: every change up to it is in the frame, and the events that
    follow are the changes after it (for a full frame, those whose result it already shows
    are left out). For a full frame it is at least the Start's seq, for a resume the
    subscription's seq."""


#: One committed change of a conversation, sent to every subscriber of the account, told
#: apart by ``event`` (the SDK's TIMConvEvent), or a sync frame's Start / Finish.
ConvEventParams: TypeAlias = (
    ConvEventAdd | ConvEventDel | ConvEventUpdate | ConvEventStart | ConvEventFinish
)


_BatchConvs = Annotated[
    list[ConvKey],
    msgspec.Meta(
        description=f"The conversations, 1..{MAX_BATCH_CONVS} (more: 51006; none: "
        "6017); each gets one result, in the order given (a repeated one counts once)."
    ),
]


class ConvMarkParams(_Params):
    """Set or clear one mark on conversations (TIMConvMarkConversation, V2
    markConversation).

    ``mark_type`` is one mark: Star 0x1, Unread 0x2, Fold 0x4, Hide 0x8, or a custom mark
    ``1 << n`` with ``32 <= n < 64`` (anything else: 6017). Each conversation whose marks
    change gets an Update event; marking does not reorder the list.
    """

    convs: _BatchConvs
    mark_type: MarkType
    enable_mark: Annotated[bool, msgspec.Meta(description="true sets the mark, false clears it.")]


class ConvListByFilterParams(ConvListParams):
    """One page of the conversations that match a filter (TIMConvGetConversationListByFilter,
    V2 getConversationListByFilter), in ``conv.list`` order, paged as ``conv.list`` is."""

    filter: ConvListFilter = msgspec.field(default_factory=ConvListFilter)


class ConvGroupCreateParams(_Params):
    """Create a conversation group, with conversations in it
    (TIMConvCreateConversationGroup). At most 20 groups per account (51010); a name that is
    taken answers 6017."""

    group_name: GroupName
    convs: Annotated[
        list[ConvKey],
        msgspec.Meta(
            description=f"The conversations to put in it, 0..{MAX_BATCH_CONVS} (more: "
            "51006), each with its own result."
        ),
    ] = msgspec.field(default_factory=list)


class ConvGroupDeleteParams(_Params):
    """Delete a conversation group (TIMConvDeleteConversationGroup); its conversations stay,
    outside it."""

    group_name: GroupName


class ConvGroupRenameParams(_Params):
    """Rename a conversation group (TIMConvRenameConversationGroup); a new name that is taken
    answers 6017."""

    old_name: GroupName
    new_name: GroupName


class ConvGroupAddParams(_Params):
    """Add conversations to a conversation group (TIMConvAddConversationsToGroup)."""

    group_name: GroupName
    convs: _BatchConvs


class ConvGroupRemoveParams(_Params):
    """Remove conversations from a conversation group (TIMConvDeleteConversationsFromGroup)."""

    group_name: GroupName
    convs: _BatchConvs


class _ConvGroupEvent(msgspec.Struct, tag_field="event", kw_only=True):
    subscription: Annotated[int, msgspec.Meta(description="The subscription it belongs to.")]
    seq: Annotated[
        int,
        msgspec.Meta(
            description="The account's change sequence when it was committed: the Update "
            "events of the conversations it changed come before it, with seqs up to this one. "
            "A group event is not a change of its own: it takes no seq and is not replayed "
            "on resume (re-list the groups after a sync frame's Finish)."
        ),
    ]
    origin: Annotated[str, msgspec.Meta(description="Id of the connection that made the change.")]
    group_name: Annotated[str, msgspec.Meta(description="The group (for a rename: its new name).")]


class ConvGroupEventCreated(_ConvGroupEvent, tag="created"):
    """A conversation group was created (V2 onConversationGroupCreated)."""

    conv_array: Annotated[
        list[ConvInfo], msgspec.Meta(description="The conversations it was created with.")
    ]


class ConvGroupEventDeleted(_ConvGroupEvent, tag="deleted"):
    """A conversation group was deleted (V2 onConversationGroupDeleted)."""


class ConvGroupEventNameChanged(_ConvGroupEvent, tag="name_changed"):
    """A conversation group was renamed (V2 onConversationGroupNameChanged): ``group_name`` is
    the new name."""

    old_name: str


class ConvGroupEventConversationsAdded(_ConvGroupEvent, tag="conversations_added"):
    """Conversations were added to a group (V2 onConversationsAddedToGroup)."""

    conv_array: Annotated[
        list[ConvInfo], msgspec.Meta(description="The conversations added (now in it).")
    ]


class ConvGroupEventConversationsDeleted(_ConvGroupEvent, tag="conversations_deleted"):
    """Conversations were removed from a group (V2 onConversationsDeletedFromGroup)."""

    conv_array: Annotated[
        list[ConvInfo], msgspec.Meta(description="The conversations removed (no longer in it).")
    ]
    reason: Annotated[
        int, msgspec.Meta(description="0: a call removed them (the SDK's reason 0).")
    ] = 0


#: A committed change of the account's conversation groups, to every subscriber of the
#: account, told apart by ``event``; sent after commit, in commit order with ``conv.event``.
ConvGroupEventParams: TypeAlias = (
    ConvGroupEventCreated
    | ConvGroupEventDeleted
    | ConvGroupEventNameChanged
    | ConvGroupEventConversationsAdded
    | ConvGroupEventConversationsDeleted
)


class MethodSpec(msgspec.Struct, frozen=True, kw_only=True):
    """One method of the contract: its name, documentation, params, result and errors."""

    name: str
    summary: str
    params: type[msgspec.Struct]
    result: Any
    errors: tuple[int, ...] = ()
    requires_login: bool = False
    #: Writes the database: the daemon runs consecutive writes of one JSON-RPC batch in one
    #: group commit.
    writes: bool = False


class NotificationSpec(msgspec.Struct, frozen=True, kw_only=True):
    """A server-to-client notification."""

    name: str
    summary: str
    params: Any


_CONV_ERRORS = (TIMErrCode.ERR_SDK_NOT_LOGGED_IN, TIMErrCode.ERR_SDK_COMM_DATABASE_FAILURE)
_KEY_ERRORS = (
    TIMErrCode.ERR_INVALID_PARAMETERS,
    TIMErrCode.ERR_SDK_COMM_INVALID_IDENTIFIER,
    TIMErrCode.ERR_SDK_GROUP_INVALID_ID,
)

_BATCH_ERRORS = (
    TIMErrCode.ERR_INVALID_PARAMETERS,
    TIMErrCode.ERR_SVR_CONV_CONV_MARK_REQ_COUNT_EXCEED_LIMIT,
)
_GROUP_NAME_ERRORS = (
    TIMErrCode.ERR_INVALID_PARAMETERS,
    TIMErrCode.ERR_SVR_CONV_CONV_GROUP_NAME_EXCEED_LENGTH,
)

METHODS: tuple[MethodSpec, ...] = (
    MethodSpec(
        name="session.login",
        summary="Scope this connection to an SDK account (TIMInit + TIMLogin).",
        params=SessionLoginParams,
        result=SessionLoginResult,
        errors=(TIMErrCode.ERR_SDK_COMM_INVALID_IDENTIFIER,),
    ),
    MethodSpec(
        name="session.logout",
        summary="Leave the account; ends this connection's subscriptions (TIMLogout).",
        params=EmptyParams,
        result=EmptyResult,
    ),
    MethodSpec(
        name="conv.create",
        summary="Create a conversation, or return the existing one unchanged (TIMConvCreate).",
        params=ConvKeyParams,
        result=ConvInfo,
        errors=_CONV_ERRORS + _KEY_ERRORS,
        requires_login=True,
        writes=True,
    ),
    MethodSpec(
        name="conv.delete",
        summary="Delete a conversation and its draft (TIMConvDelete).",
        params=ConvKeyParams,
        result=EmptyResult,
        errors=(*_CONV_ERRORS, *_KEY_ERRORS, TIMErrCode.ERR_INVALID_CONVERSATION),
        requires_login=True,
        writes=True,
    ),
    MethodSpec(
        name="conv.list",
        summary="One page of the conversation list (TIMConvGetConvList).",
        params=ConvListParams,
        result=ConvListResult,
        errors=_CONV_ERRORS,
        requires_login=True,
    ),
    MethodSpec(
        name="conv.get",
        summary="Conversations by id and type; unknown ones left out (TIMConvGetConvInfo).",
        params=ConvGetParams,
        result=list[ConvInfo],
        errors=_CONV_ERRORS + _KEY_ERRORS,
        requires_login=True,
    ),
    MethodSpec(
        name="conv.set_draft",
        summary="Set a conversation's draft (TIMConvSetDraft, V2 setConversationDraft).",
        params=ConvSetDraftParams,
        result=ConvInfo,
        errors=(
            *_CONV_ERRORS,
            *_KEY_ERRORS,
            TIMErrCode.ERR_INVALID_MSG_ELEM,
            TIMErrCode.ERR_SDK_MSG_BODY_SIZE_LIMIT,
            ConvdErrCode.DRAFT_REVISION_CONFLICT,
        ),
        requires_login=True,
        writes=True,
    ),
    MethodSpec(
        name="conv.cancel_draft",
        summary="Clear a conversation's draft (TIMConvCancelDraft).",
        params=ConvCancelDraftParams,
        result=ConvInfo,
        errors=(
            *_CONV_ERRORS,
            *_KEY_ERRORS,
            TIMErrCode.ERR_INVALID_CONVERSATION,
            ConvdErrCode.DRAFT_REVISION_CONFLICT,
        ),
        requires_login=True,
        writes=True,
    ),
    MethodSpec(
        name="conv.pin",
        summary="Pin or unpin a conversation (TIMConvPinConversation).",
        params=ConvPinParams,
        result=EmptyResult,
        errors=(
            *_CONV_ERRORS,
            *_KEY_ERRORS,
            TIMErrCode.ERR_INVALID_CONVERSATION,
            ConvdErrCode.PIN_LIMIT_EXCEEDED,
        ),
        requires_login=True,
        writes=True,
    ),
    MethodSpec(
        name="conv.delete_many",
        summary="Delete up to 100 conversations and their drafts in one transaction, with a "
        "result per conversation (TIMConvDeleteConversationList).",
        params=ConvDeleteManyParams,
        result=list[ConvOperationResult],
        errors=_CONV_ERRORS + _KEY_ERRORS,
        requires_login=True,
        writes=True,
    ),
    MethodSpec(
        name="conv.set_custom_data",
        summary="Set the custom data (at most 256 bytes) of up to 100 conversations, with a "
        "result per conversation (TIMConvSetConversationCustomData).",
        params=ConvSetCustomDataParams,
        result=list[ConvOperationResult],
        errors=(
            *_CONV_ERRORS,
            *_KEY_ERRORS,
            TIMErrCode.ERR_SVR_CONV_CONV_MARK_REQ_COUNT_EXCEED_LIMIT,
        ),
        requires_login=True,
        writes=True,
    ),
    MethodSpec(
        name="conv.draft_history",
        summary="A conversation's earlier drafts, newest first (convd extension).",
        params=ConvDraftHistoryParams,
        result=ConvDraftHistoryResult,
        errors=(*_CONV_ERRORS, *_KEY_ERRORS, TIMErrCode.ERR_INVALID_CONVERSATION),
        requires_login=True,
    ),
    MethodSpec(
        name="conv.restore_draft",
        summary="Make an earlier draft the current one again (convd extension).",
        params=ConvRestoreDraftParams,
        result=ConvInfo,
        errors=(
            *_CONV_ERRORS,
            *_KEY_ERRORS,
            TIMErrCode.ERR_INVALID_CONVERSATION,
            ConvdErrCode.DRAFT_REVISION_CONFLICT,
            ConvdErrCode.DRAFT_VERSION_NOT_FOUND,
        ),
        requires_login=True,
        writes=True,
    ),
    MethodSpec(
        name="conv.mark",
        summary="Set or clear a mark on conversations (TIMConvMarkConversation).",
        params=ConvMarkParams,
        result=list[ConvOperationResult],
        errors=(*_CONV_ERRORS, *_KEY_ERRORS, *_BATCH_ERRORS),
        requires_login=True,
        writes=True,
    ),
    MethodSpec(
        name="conv.list_by_filter",
        summary="One page of the conversations matching a filter "
        "(TIMConvGetConversationListByFilter).",
        params=ConvListByFilterParams,
        result=ConvListResult,
        errors=(*_CONV_ERRORS, TIMErrCode.ERR_INVALID_PARAMETERS),
        requires_login=True,
    ),
    MethodSpec(
        name="conv.group_create",
        summary="Create a conversation group (TIMConvCreateConversationGroup).",
        params=ConvGroupCreateParams,
        result=list[ConvOperationResult],
        errors=(
            *_CONV_ERRORS,
            *_KEY_ERRORS,
            *_GROUP_NAME_ERRORS,
            TIMErrCode.ERR_SVR_CONV_CONV_MARK_REQ_COUNT_EXCEED_LIMIT,
            TIMErrCode.ERR_SVR_CONV_CONV_GROUP_TOTAL_COUNT_EXCEED_LIMIT,
        ),
        requires_login=True,
        writes=True,
    ),
    MethodSpec(
        name="conv.group_list",
        summary="The account's conversation group names, oldest first "
        "(TIMConvGetConversationGroupList).",
        params=EmptyParams,
        result=list[str],
        errors=_CONV_ERRORS,
        requires_login=True,
    ),
    MethodSpec(
        name="conv.group_delete",
        summary="Delete a conversation group (TIMConvDeleteConversationGroup).",
        params=ConvGroupDeleteParams,
        result=EmptyResult,
        errors=(
            *_CONV_ERRORS,
            *_GROUP_NAME_ERRORS,
            TIMErrCode.ERR_SVR_CONV_CONV_GROUP_NOT_EXIST,
        ),
        requires_login=True,
        writes=True,
    ),
    MethodSpec(
        name="conv.group_rename",
        summary="Rename a conversation group (TIMConvRenameConversationGroup).",
        params=ConvGroupRenameParams,
        result=EmptyResult,
        errors=(
            *_CONV_ERRORS,
            *_GROUP_NAME_ERRORS,
            TIMErrCode.ERR_SVR_CONV_CONV_GROUP_NOT_EXIST,
        ),
        requires_login=True,
        writes=True,
    ),
    MethodSpec(
        name="conv.group_add",
        summary="Add conversations to a conversation group (TIMConvAddConversationsToGroup).",
        params=ConvGroupAddParams,
        result=list[ConvOperationResult],
        errors=(
            *_CONV_ERRORS,
            *_KEY_ERRORS,
            *_BATCH_ERRORS,
            *_GROUP_NAME_ERRORS,
            TIMErrCode.ERR_SVR_CONV_CONV_GROUP_NOT_EXIST,
        ),
        requires_login=True,
        writes=True,
    ),
    MethodSpec(
        name="conv.group_remove",
        summary="Remove conversations from a conversation group "
        "(TIMConvDeleteConversationsFromGroup).",
        params=ConvGroupRemoveParams,
        result=list[ConvOperationResult],
        errors=(
            *_CONV_ERRORS,
            *_KEY_ERRORS,
            *_BATCH_ERRORS,
            *_GROUP_NAME_ERRORS,
            TIMErrCode.ERR_SVR_CONV_CONV_GROUP_NOT_EXIST,
        ),
        requires_login=True,
        writes=True,
    ),
    MethodSpec(
        name="conv.subscribe",
        summary="Receive the account's conversation events as `conv.event` notifications.",
        params=ConvSubscribeParams,
        result=ConvSubscribeResult,
        # 6017: the connection holds MAX_SUBSCRIPTIONS already.
        errors=(*_CONV_ERRORS, TIMErrCode.ERR_INVALID_PARAMETERS, ConvdErrCode.SEQ_TOO_OLD),
        requires_login=True,
    ),
    MethodSpec(
        name="conv.unsubscribe",
        summary="End a subscription.",
        params=ConvUnsubscribeParams,
        result=EmptyResult,
        errors=(*_CONV_ERRORS, ConvdErrCode.SUBSCRIPTION_NOT_FOUND),
        requires_login=True,
    ),
    MethodSpec(
        name="daemon.status",
        summary="Version, pid, uptime, connections, paths and conversation count.",
        params=EmptyParams,
        result=DaemonStatus,
    ),
    MethodSpec(
        name="daemon.backup",
        summary="Write an online, consistent copy of the database to a file (SQLite backup).",
        params=DaemonBackupParams,
        result=DaemonBackupResult,
        errors=(ConvdErrCode.BACKUP_FAILED,),
    ),
    MethodSpec(
        name="rpc.discover",
        summary="This OpenRPC document.",
        params=EmptyParams,
        result=dict[str, Any],
    ),
)

NOTIFICATIONS: tuple[NotificationSpec, ...] = (
    NotificationSpec(
        name="conv.event",
        summary="A committed conversation change (Add 0, Del 1, Update 2), in commit order; "
        "with `sync`, framed by Start 3 and Finish 4.",
        params=ConvEventParams,
    ),
    NotificationSpec(
        name="conv.group_event",
        summary="A committed change of the account's conversation groups (created, deleted, "
        "name_changed, conversations_added, conversations_deleted), after commit and in "
        "commit order with `conv.event`; not replayed on resume.",
        params=ConvGroupEventParams,
    ),
)
