"""The methods of the contract: decode params, call the domain, encode the result.

Every method is wrapped once, here, so that its params are checked against its wire type,
login is enforced where the contract says so and domain errors get their codes. Any other
exception is left to the dispatcher, which turns it into a bare -32603 with a correlation id.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

import msgspec

from convd_schemas import (
    ERROR_TABLE,
    METHODS,
    ConvCancelDraftParams,
    ConvDeleteManyParams,
    ConvDraftHistoryParams,
    ConvDraftHistoryResult,
    ConvGetParams,
    ConvGroupAddParams,
    ConvGroupCreateParams,
    ConvGroupDeleteParams,
    ConvGroupRemoveParams,
    ConvGroupRenameParams,
    ConvInfo,
    ConvKeyParams,
    ConvListByFilterParams,
    ConvListParams,
    ConvMarkParams,
    ConvPinParams,
    ConvRestoreDraftParams,
    ConvSetCustomDataParams,
    ConvSetDraftParams,
    ConvSubscribeParams,
    ConvSubscribeResult,
    ConvUnsubscribeParams,
    DaemonBackupParams,
    DaemonBackupResult,
    DaemonStatus,
    EmptyResult,
    JsonRpcErrCode,
    MethodSpec,
    SessionLoginParams,
    SessionLoginResult,
)
from convd_schemas.limits import DEFAULT_PAGE_SIZE, MAX_SUBSCRIPTIONS

from .. import domain
from .convert import (
    conv_info,
    domain_elements,
    domain_filter,
    domain_key,
    domain_keys,
    draft_version,
    list_result,
    listed_info,
)
from .dispatcher import Error, Handler, InvalidParams, Result, Success
from .errors import operation_results, wire_error
from .session import Session, Subscription

__all__ = ["Methods"]

logger = logging.getLogger(__name__)

_REPLAY_PAGE = 500
#: Conversations per Update event of a full sync frame (and per conv.list read).
_SYNC_PAGE = DEFAULT_PAGE_SIZE
_info_encoder = msgspec.json.Encoder()
Impl = Callable[[Session, Any], Awaitable[Any]]


def _unset_to_none(value: Any) -> Any:
    return None if value is msgspec.UNSET else value


class Methods:
    """Binds every method of ``convd_schemas.METHODS`` to the conversation service."""

    def __init__(
        self,
        service: domain.ConversationService,
        status: Callable[[], Awaitable[DaemonStatus]],
        openrpc: dict[str, Any] | Callable[[], dict[str, Any]],
    ) -> None:
        self._service = service
        self._status = status
        self._openrpc = openrpc

    def table(self) -> dict[str, Handler]:
        impls: dict[str, Impl] = {
            "session.login": self.session_login,
            "session.logout": self.session_logout,
            "conv.create": self.conv_create,
            "conv.delete": self.conv_delete,
            "conv.list": self.conv_list,
            "conv.get": self.conv_get,
            "conv.set_draft": self.conv_set_draft,
            "conv.cancel_draft": self.conv_cancel_draft,
            "conv.pin": self.conv_pin,
            "conv.delete_many": self.conv_delete_many,
            "conv.set_custom_data": self.conv_set_custom_data,
            "conv.draft_history": self.conv_draft_history,
            "conv.restore_draft": self.conv_restore_draft,
            "conv.mark": self.conv_mark,
            "conv.list_by_filter": self.conv_list_by_filter,
            "conv.group_create": self.conv_group_create,
            "conv.group_list": self.conv_group_list,
            "conv.group_delete": self.conv_group_delete,
            "conv.group_rename": self.conv_group_rename,
            "conv.group_add": self.conv_group_add,
            "conv.group_remove": self.conv_group_remove,
            "conv.subscribe": self.conv_subscribe,
            "conv.unsubscribe": self.conv_unsubscribe,
            "daemon.status": self.daemon_status,
            "daemon.backup": self.daemon_backup,
            "rpc.discover": self.rpc_discover,
        }
        missing = {spec.name for spec in METHODS} ^ impls.keys()
        if missing:
            raise RuntimeError(f"the contract and the handlers differ: {sorted(missing)}")
        return {spec.name: _wrap(spec, impls[spec.name]) for spec in METHODS}

    @staticmethod
    def writes() -> frozenset[str]:
        """The methods that write: consecutive ones in a batch share a group commit."""
        return frozenset(spec.name for spec in METHODS if spec.writes)

    # -- session -----------------------------------------------------------------------------

    async def session_login(self, session: Session, params: SessionLoginParams) -> Any:
        account = await self._service.login(params.sdk_app_id, params.user_id)
        if session.account != account:
            self.end_subscriptions(session)
        session.account = account
        return SessionLoginResult(user_id=account.user_id, sdk_app_id=account.sdk_app_id)

    async def session_logout(self, session: Session, params: object) -> Any:
        self.end_subscriptions(session)
        session.account = None
        return EmptyResult()

    def end_subscriptions(self, session: Session) -> None:
        if session.account is not None:
            for subscription in session.subscriptions.values():
                self._service.unsubscribe(session.account, subscription.token)
        session.subscriptions.clear()

    # -- conversations -----------------------------------------------------------------------

    async def conv_create(self, session: Session, params: ConvKeyParams) -> Any:
        key = domain_key(params.conv_id, params.conv_type)
        conversation = await self._service.create(
            session.require_account(), key, origin=session.origin
        )
        # The ConvInfo its event was encoded from, if anyone subscribes: converted once.
        return session.encoder.conv_info(conversation)

    async def conv_delete(self, session: Session, params: ConvKeyParams) -> Any:
        key = domain_key(params.conv_id, params.conv_type)
        await self._service.delete(session.require_account(), key, origin=session.origin)
        return EmptyResult()

    async def conv_list(self, session: Session, params: ConvListParams) -> Any:
        page = await self._service.list_page(
            session.require_account(), params.next_seq, params.count
        )
        return list_result(page)

    async def conv_get(self, session: Session, params: ConvGetParams) -> Any:
        found = await self._service.get_many(session.require_account(), domain_keys(params.convs))
        result: list[ConvInfo] = [conv_info(c) for c in found]
        return result

    async def conv_set_draft(self, session: Session, params: ConvSetDraftParams) -> Any:
        draft = params.draft
        conversation = await self._service.set_draft(
            session.require_account(),
            domain_key(params.conv_id, params.conv_type),
            domain_elements(draft),
            user_define=draft.draft_user_define,
            edit_time=_unset_to_none(draft.draft_edit_time),
            if_revision=_unset_to_none(params.if_revision),
            origin=session.origin,
        )
        # The ConvInfo its event was encoded from, if anyone subscribes: converted once.
        return session.encoder.conv_info(conversation)

    async def conv_cancel_draft(self, session: Session, params: ConvCancelDraftParams) -> Any:
        conversation = await self._service.cancel_draft(
            session.require_account(),
            domain_key(params.conv_id, params.conv_type),
            if_revision=_unset_to_none(params.if_revision),
            origin=session.origin,
        )
        # The ConvInfo its event was encoded from, if anyone subscribes: converted once.
        return session.encoder.conv_info(conversation)

    async def conv_pin(self, session: Session, params: ConvPinParams) -> Any:
        key = domain_key(params.conv_id, params.conv_type)
        await self._service.pin(
            session.require_account(), key, is_pinned=params.is_pinned, origin=session.origin
        )
        return EmptyResult()

    async def conv_delete_many(self, session: Session, params: ConvDeleteManyParams) -> Any:
        outcomes = await self._service.delete_many(
            session.require_account(), domain_keys(params.convs), origin=session.origin
        )
        return operation_results(outcomes)

    async def conv_set_custom_data(self, session: Session, params: ConvSetCustomDataParams) -> Any:
        outcomes = await self._service.set_custom_data(
            session.require_account(),
            domain_keys(params.convs),
            params.custom_data,
            origin=session.origin,
        )
        return operation_results(outcomes)

    async def conv_draft_history(self, session: Session, params: ConvDraftHistoryParams) -> Any:
        conversation, versions = await self._service.draft_history(
            session.require_account(), domain_key(params.conv_id, params.conv_type), params.count
        )
        return ConvDraftHistoryResult(
            conv_draft_revision=conversation.draft_revision,
            versions=[draft_version(v) for v in versions],
        )

    async def conv_restore_draft(self, session: Session, params: ConvRestoreDraftParams) -> Any:
        conversation = await self._service.restore_draft(
            session.require_account(),
            domain_key(params.conv_id, params.conv_type),
            revision=params.revision,
            if_revision=_unset_to_none(params.if_revision),
            origin=session.origin,
        )
        # The ConvInfo its event was encoded from, if anyone subscribes: converted once.
        return session.encoder.conv_info(conversation)

    async def conv_mark(self, session: Session, params: ConvMarkParams) -> Any:
        outcomes = await self._service.mark(
            session.require_account(),
            domain_keys(params.convs),
            mark_type=params.mark_type,
            enable=params.enable_mark,
            origin=session.origin,
        )
        return operation_results(outcomes)

    async def conv_list_by_filter(self, session: Session, params: ConvListByFilterParams) -> Any:
        where = domain_filter(params.filter)
        account = session.require_account()
        if where is None:
            # Unread messages and @ information: convd has none, so nothing matches.
            return list_result(domain.ConversationPage(b"[]", 0, params.next_seq, True))
        page = await self._service.list_page(account, params.next_seq, params.count, where=where)
        return list_result(page)

    async def conv_group_create(self, session: Session, params: ConvGroupCreateParams) -> Any:
        outcomes = await self._service.create_group(
            session.require_account(),
            params.group_name,
            domain_keys(params.convs),
            origin=session.origin,
        )
        return operation_results(outcomes)

    async def conv_group_list(self, session: Session, params: object) -> Any:
        return await self._service.list_groups(session.require_account())

    async def conv_group_delete(self, session: Session, params: ConvGroupDeleteParams) -> Any:
        await self._service.delete_group(
            session.require_account(), params.group_name, origin=session.origin
        )
        return EmptyResult()

    async def conv_group_rename(self, session: Session, params: ConvGroupRenameParams) -> Any:
        await self._service.rename_group(
            session.require_account(), params.old_name, params.new_name, origin=session.origin
        )
        return EmptyResult()

    async def conv_group_add(self, session: Session, params: ConvGroupAddParams) -> Any:
        outcomes = await self._service.add_to_group(
            session.require_account(),
            params.group_name,
            domain_keys(params.convs),
            origin=session.origin,
        )
        return operation_results(outcomes)

    async def conv_group_remove(self, session: Session, params: ConvGroupRemoveParams) -> Any:
        outcomes = await self._service.remove_from_group(
            session.require_account(),
            params.group_name,
            domain_keys(params.convs),
            origin=session.origin,
        )
        return operation_results(outcomes)

    # -- events ------------------------------------------------------------------------------

    async def conv_subscribe(self, session: Session, params: ConvSubscribeParams) -> Any:
        account = session.require_account()
        if len(session.subscriptions) >= MAX_SUBSCRIPTIONS:
            # Bounds what one connection can make the writer do per committed change.
            raise domain.InvalidParameter(
                f"a connection may hold at most {MAX_SUBSCRIPTIONS} subscriptions"
            )
        since_seq: int | None = _unset_to_none(params.since_seq)
        sync = params.sync
        subscription = session.new_subscription(replaying=since_seq is not None or sync)
        token, seq = await self._service.subscribe(
            account, subscription.deliver, subscription.deliver_group
        )
        subscription.token = token
        work: Callable[[], Awaitable[None]] | None = None
        if since_seq is None:
            subscription.last_seq = seq
            if sync:

                async def work() -> None:
                    await self._sync(session, subscription, account, seq)

        else:
            try:
                await self._service.check_resumable(
                    account, since_seq, seq, _unset_to_none(params.history)
                )
            except BaseException:
                self._service.unsubscribe(account, token)
                raise
            subscription.last_seq = since_seq

            async def work() -> None:
                await self._replay(session, subscription, account, since_seq, seq, sync)

        if work is not None:
            session.after_reply.append(work)
        session.subscriptions[subscription.id] = subscription
        return ConvSubscribeResult(
            subscription=subscription.id,
            seq=seq,
            origin=session.origin,
            history=self._service.history_id,
        )

    async def _replay(
        self,
        session: Session,
        subscription: Subscription,
        account: domain.Account,
        since_seq: int,
        up_to: int,
        framed: bool,
    ) -> None:
        if framed and subscription.id in session.subscriptions:
            await session.send(subscription.start_line(since_seq, full=False))
        while subscription.last_seq < up_to and subscription.id in session.subscriptions:
            changes = await self._service.changes_between(
                account, subscription.last_seq, up_to, _REPLAY_PAGE
            )
            if not changes or changes[0].seq != subscription.last_seq + 1:
                # The feed was pruned while this client read its replay: the changes it still
                # lacks are gone. Cut it; its resume is then refused (90003) and it reloads.
                session.overflow(
                    f"changes after seq {subscription.last_seq} were pruned during the replay"
                )
                return
            for change in changes:
                await session.send(subscription.encode(change))
                subscription.last_seq = change.seq
        # Unsubscribed (or logged out) meanwhile: the held changes belong to no one.
        if subscription.id in session.subscriptions:
            if framed:
                await session.send(subscription.finish_line(up_to))
            subscription.release()

    async def _sync(
        self, session: Session, subscription: Subscription, account: domain.Account, seq: int
    ) -> None:
        """A full sync frame: Start, the whole list in pages, Finish, then the held changes.

        The list is read page by page while others may write; every change after ``seq`` is
        held meanwhile. A conversation whose place did not change is read exactly once (the
        conv.list cursor is its sort key). One that changed may be read twice (sent once) or
        not at all: those not sent get one last page with their latest state. A held change
        whose result the frame already shows is dropped, the others follow Finish, whose seq
        is the resume point: the last seq up to which every change is in the frame.
        """
        sent: dict[tuple[int, str], bytes] = {}
        if subscription.id not in session.subscriptions:
            return  # ended by a later call of the same batch
        await session.send(subscription.start_line(seq, full=True))
        cursor = 0
        while True:
            if subscription.id not in session.subscriptions:
                return
            page = await self._service.list_rows(account, cursor, _SYNC_PAGE)
            infos: list[ConvInfo] = []
            for row in page.rows:
                key = (row.conv_type, row.conv_id)
                if key in sent:
                    continue  # moved down while the list was read: sent already
                info = listed_info(row)
                sent[key] = _digest(info)
                infos.append(info)
            if infos:
                await session.send(subscription.page_line(seq, infos))
            if page.is_finished:
                break
            cursor = page.next_seq
        # Every change a page can reflect has a seq <= last, and has reached this
        # subscription's hold by now (changes are published in commit order, before a later
        # write such as this subscribe returns).
        token, last = await self._service.subscribe(account, _ignore_change)
        self._service.unsubscribe(account, token)
        if subscription.id not in session.subscriptions:
            return
        seen = [c for c in subscription.held() if c.seq <= last]
        skip, late = _reconcile(seen, sent)
        late.sort(key=lambda c: c.active_time, reverse=True)
        for start in range(0, len(late), _SYNC_PAGE):
            page_infos = [conv_info(c) for c in late[start : start + _SYNC_PAGE]]
            await session.send(subscription.page_line(seq, page_infos))
        # The resume point: every change up to it is in the frame; the ones after it follow.
        following = [c.seq for c in seen if c.seq not in skip]
        resume_seq = following[0] - 1 if following else last
        await session.send(subscription.finish_line(resume_seq))
        logger.debug(
            "connection %s: synced %d conversations from seq %d to %d (%d of them late); %d "
            "held changes were already shown",
            session.origin,
            len(sent) + len(late),
            seq,
            resume_seq,
            len(late),
            len(skip),
        )
        subscription.release(skip)

    async def conv_unsubscribe(self, session: Session, params: ConvUnsubscribeParams) -> Any:
        account = session.require_account()
        subscription = session.subscriptions.pop(params.subscription, None)
        if subscription is None:
            raise domain.SubscriptionNotFound(f"no subscription {params.subscription}")
        self._service.unsubscribe(account, subscription.token)
        return EmptyResult()

    # -- daemon ------------------------------------------------------------------------------

    async def daemon_status(self, session: Session, params: object) -> Any:
        return await self._status()

    async def daemon_backup(self, session: Session, params: DaemonBackupParams) -> Any:
        try:
            backup = await self._service.backup(params.path, params.overwrite)
        except domain.BackupFailed as exc:
            # Quoted: the path is the client's, and may hold a newline.
            logger.warning("connection %s: backup failed: %r", session.origin, str(exc))
            raise
        logger.info(
            "connection %s wrote a backup to %r (%d bytes, schema version %d)",
            session.origin,
            backup.path,
            backup.size_bytes,
            backup.schema_version,
        )
        return DaemonBackupResult(
            path=backup.path, size_bytes=backup.size_bytes, schema_version=backup.schema_version
        )

    async def rpc_discover(self, session: Session, params: object) -> Any:
        if callable(self._openrpc):
            # Built on first use (about 10 ms), not at start-up.
            self._openrpc = self._openrpc()
        return self._openrpc


def _ignore_change(change: domain.Change) -> None:
    pass


def _digest(info: ConvInfo) -> bytes:
    """Tells apart the states of one conversation, as a client sees them."""
    import hashlib  # only a resuming sync needs it: kept off the start-up path

    return hashlib.blake2b(_info_encoder.encode(info), digest_size=16).digest()


def _reconcile(
    changes: list[domain.Change], sent: dict[tuple[int, str], bytes]
) -> tuple[set[int], list[domain.Conversation]]:
    """Which held changes a full sync frame already reflects, and what it still lacks.

    For a conversation the frame sent, the changes up to the last one whose result equals
    what was sent are reflected (the page was read after it); the later ones must follow.
    For one it did not send (created or moved while the list was read), its latest state
    is added to the frame (unless it was deleted) and all its changes so far are reflected.
    Returns the seqs to skip and the conversations to add.
    """
    by_key: dict[domain.ConvKey, list[domain.Change]] = {}
    for change in changes:
        by_key.setdefault(change.key, []).append(change)
    skip: set[int] = set()
    late: list[domain.Conversation] = []
    for key, history in by_key.items():
        shown = sent.get((int(key.conv_type), key.conv_id))
        if shown is None:
            skip.update(c.seq for c in history)
            latest = history[-1].conversation
            if latest is not None:
                late.append(latest)
            continue
        for n in range(len(history) - 1, -1, -1):
            state = history[n].conversation
            if state is not None and _digest(conv_info(state)) == shown:
                skip.update(c.seq for c in history[: n + 1])
                break
    return skip, late


def _wrap(spec: MethodSpec, impl: Impl) -> Handler:
    decoder = msgspec.json.Decoder(spec.params)

    async def handler(session: Session, params: msgspec.Raw) -> Result:
        try:
            if spec.requires_login:
                session.require_account()
            try:
                decoded = decoder.decode(params)
            except msgspec.ValidationError as exc:
                if bytes(params).lstrip()[:1] == b"[":
                    return InvalidParams("params must be an object (by name), not an array")
                return InvalidParams(str(exc))
            except (msgspec.DecodeError, UnicodeDecodeError, RecursionError) as exc:
                code = JsonRpcErrCode.PARSE_ERROR
                return Error(int(code), ERROR_TABLE[code].message, str(exc))
            return Success(await impl(session, decoded))
        except domain.DomainError as exc:
            return Error(**wire_error(exc))
        # Anything else escapes to the dispatcher's guard: -32603 with a correlation id.

    handler.__name__ = spec.name.replace(".", "_")
    return handler
