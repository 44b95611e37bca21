"""``convctl``: talk to a running convd from the shell.

Exit status: 0 success; 1 the daemon answered with an error (code and message on stderr),
or did not answer in time; 2 usage error; 3 the daemon cannot be reached (the socket path
tried and a hint on stderr); 130 interrupted (Ctrl-C), except ``watch``, which stops with 0.
A closed stdout (``convctl ... | head -n1``) ends the command quietly with 0; ``watch``
notices it at once (it polls stdout for POLLERR/POLLHUP), not only at its next event.

Errors: one line on stderr, ``convctl: error CODE: MESSAGE``; with ``--json`` the daemon's
error object (data included, e.g. the current ConvInfo of a revision conflict) is also printed
on stdout as ``{"error": {"code", "message", "data"}}``.

Conversations are named by their V2 ids, ``c2c_<userID>`` and ``group_<groupID>``; a bare id
means a C2C conversation. With ``--type c2c|group`` the name is the raw user or group id.

``--json`` output (stable; one JSON document per command, one line per event for ``watch``):

* ``status``: the ``daemon.status`` result; ``call``: the method's result as it is;
* ``conv list``: an array of ConvInfo, one element per line, streamed page by page;
* ``conv get`` / ``conv create``: one ConvInfo;
* ``conv delete`` / ``pin`` / ``unpin``: ``{}``;
* ``conv delete-many`` / ``set-custom-data`` / ``mark`` / ``unmark``, ``group create`` /
  ``add`` / ``remove``: an array with a result per conversation, ``{"conversation_id",
  "conv_id", "conv_type", "result_code", "result_info"}`` (exit status 1 if one failed);
* ``group list``: an array of names; ``group delete`` / ``rename``: ``{}``;
* ``conv list`` with ``--conv-type`` / ``--mark`` / ``--group`` / ``--has-draft`` /
  ``--no-draft``: as ``conv list``, the conversations that match (``conv.list_by_filter``);
* ``draft get``: ``{"text": str|null, "revision": int, "draft": Draft|null}``;
* ``draft set`` / ``draft clear`` / ``draft restore``: the ConvInfo after the change;
* ``draft history``: ``{"conv_draft_revision": int, "versions": [{"revision", "draft",
  "replaced_at", "replaced_by", "replaced_how"}, ...]}`` (newest first);
* ``backup``: the ``daemon.backup`` result; ``socket-path``: ``{"socket_path": str}``;
* ``watch``: per event ``{"seq", "event", "conversation_ids", "conv_array", "origin"}``
  (``event``: 0 Add, 1 Del, 2 Update; ``conversation_ids``: V2 ids; ``conv_array``: as the
  ``conv.event`` notification carries it); when missed events could not be replayed,
  ``{"seq", "resync": [ConvInfo, ...]}`` (the whole list).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import select
import stat
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, NoReturn

import anyio
import msgspec

from convd_schemas import (
    ConvdErrCode,
    ConvInfo,
    ConvKey,
    ConvListFilter,
    ConvOperationResult,
    DraftVersion,
    TIMConversationMarkType,
    TIMConvEvent,
    TIMConvType,
    TIMErrCode,
    __version__,
)
from convd_schemas.limits import (
    DEFAULT_DRAFT_HISTORY,
    DEFAULT_PAGE_SIZE,
    MAX_DRAFT_HISTORY,
    MAX_GROUP_ID_BYTES,
    MAX_USER_ID_BYTES,
)
from convd_schemas.paths import SOCKET_ENV, default_runtime_dir, default_socket_path

from ._loop import quiet_cancelled_read_race
from .client import Client, ConvEvent, Resync, checked_seconds
from .drafts import draft_text
from .errors import ConvdClientError, ConvdError, DaemonUnavailable
from .v2 import conversation_id, parse_conversation_id

__all__ = ["main"]

USER_ENV = "CONVD_USER"

EXIT_OK = 0
EXIT_ERROR = 1
EXIT_USAGE = 2
EXIT_UNREACHABLE = 3
EXIT_INTERRUPTED = 130

_PINNED_BIT = 1 << 62

_CONV_TYPES = {"c2c": TIMConvType.kTIMConv_C2C, "group": TIMConvType.kTIMConv_Group}

_EPILOG = f"""\
conversations:
  CONV is a V2 conversation id: c2c_<userID> or group_<groupID> (a bare id means
  c2c_<id>). With --type c2c|group, CONV is the raw user or group id.

environment:
  {USER_ENV}    the account to log in as, when --user is not given
  {SOCKET_ENV}  convd's socket, when --socket is not given

socket:
  --socket, else ${SOCKET_ENV}, else $XDG_RUNTIME_DIR/convd/convd.sock; when
  XDG_RUNTIME_DIR is unset, convd and convctl use the private fallback
  ${{TMPDIR:-/tmp}}/convd-$UID/convd.sock. `convctl socket-path` prints the path in use
  (for socat and other scripts).

output:
  Tables and plain text by default. With --json: one JSON document per command, and
  one JSON line per event for `watch` (shapes: see the README's "Scripting" section).

exit status:
  0    ok
  1    convd answered with an error (its code and message on stderr), or did not
       answer in time
  2    usage error (bad option, bad CONV, negative --count/--since/--if-revision)
  3    convd cannot be reached (the socket path tried and a hint on stderr)
  130  interrupted (Ctrl-C); `watch` stops with 0
"""


class UsageError(Exception):
    """A command line that cannot be run (exit status 2)."""


def _common_options(parser: argparse.ArgumentParser, suppress: bool) -> None:
    # The same options are accepted before and after the subcommand; after it they default
    # to SUPPRESS so that they do not overwrite a value given before it.
    def default(value: Any) -> Any:
        return argparse.SUPPRESS if suppress else value

    parser.add_argument(
        "--socket",
        type=Path,
        default=default(None),
        help=f"convd's socket (default: ${SOCKET_ENV}, else $XDG_RUNTIME_DIR/convd/convd.sock, "
        "or ${TMPDIR:-/tmp}/convd-$UID/convd.sock when XDG_RUNTIME_DIR is unset)",
    )
    parser.add_argument(
        "--user",
        default=default(None),
        help=f"log in as this user first (default: ${USER_ENV})",
    )
    parser.add_argument(
        "--sdk-app-id", type=int, default=default(0), help="SDK app id for the login"
    )
    parser.add_argument(
        "--timeout",
        type=float,
        default=default(10.0),
        help="seconds to wait for each response (default: 10)",
    )
    parser.add_argument(
        "--json", action="store_true", default=default(False), help="print JSON, not tables"
    )


def _conv_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("conv", metavar="CONV", help="c2c_<userID>, group_<groupID>, or a user id")
    parser.add_argument(
        "--type",
        dest="conv_type",
        choices=sorted(_CONV_TYPES),
        help="CONV is a raw id of this type (no c2c_/group_ prefix)",
    )


def _convs_argument(parser: argparse.ArgumentParser, nargs: str = "+") -> None:
    parser.add_argument(
        "convs", metavar="CONV", nargs=nargs, help="c2c_<userID>, group_<groupID>, or a user id"
    )
    parser.add_argument(
        "--type",
        dest="conv_type",
        choices=sorted(_CONV_TYPES),
        help="each CONV is a raw id of this type (no c2c_/group_ prefix)",
    )


#: ``--mark``'s names for the SDK's marks (TIMConversationMarkType).
_MARKS = {
    "star": int(TIMConversationMarkType.kTIMConversationMarkTypeStar),
    "unread": int(TIMConversationMarkType.kTIMConversationMarkTypeUnread),
    "fold": int(TIMConversationMarkType.kTIMConversationMarkTypeFold),
    "hide": int(TIMConversationMarkType.kTIMConversationMarkTypeHide),
    "none": 0,
}


def _mark_value(text: str) -> int:
    """A ``--mark`` value: a mark's name or a number (decimal or 0x...)."""
    if text.lower() in _MARKS:
        return _MARKS[text.lower()]
    try:
        value = int(text, 0)
    except ValueError:
        raise UsageError(
            f"invalid mark {text!r}: use star, unread, fold, hide or a number"
        ) from None
    if value < 0:
        raise UsageError("--mark must not be negative")
    return value


def build_parser() -> argparse.ArgumentParser:
    """The argument parser (subcommands: call, status, conv, draft, backup, watch)."""
    parser = argparse.ArgumentParser(
        prog="convctl",
        description="Talk to convd, the IM conversation and draft daemon.",
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"convctl {__version__}")
    _common_options(parser, suppress=False)
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    def command(name: str, help_text: str, parent: Any = commands) -> argparse.ArgumentParser:
        sub: argparse.ArgumentParser = parent.add_parser(
            name, help=help_text, description=help_text
        )
        _common_options(sub, suppress=True)
        # The innermost subcommand's defaults win, so this is the parser whose usage a usage
        # error found after parsing prints.
        sub.set_defaults(command_parser=sub)
        return sub

    call = command("call", "call any method and print its result as JSON")
    call.add_argument("method", help="e.g. daemon.status, conv.list")
    call.add_argument("params", nargs="?", help="params as a JSON object")
    call.set_defaults(run=_cmd_call, needs_user=False, late_positional="params")

    status = command("status", "show the daemon's status")
    status.set_defaults(run=_cmd_status, needs_user=False)

    socket_path = command(
        "socket-path",
        "print the socket path convctl uses (--socket, $CONVD_SOCKET, or the default, "
        "including the fallback when XDG_RUNTIME_DIR is unset); needs no running convd",
    )
    socket_path.set_defaults(run=None, needs_user=False)

    conv = command("conv", "list and change conversations")
    conv_commands = conv.add_subparsers(dest="conv_command", metavar="ACTION", required=True)
    conv_list = command("list", "list the conversations", conv_commands)
    conv_list.set_defaults(run=_cmd_conv_list, needs_user=True)
    conv_list.add_argument(
        "--page-size",
        type=int,
        default=DEFAULT_PAGE_SIZE,
        help=f"conversations fetched (and printed) at a time (default: {DEFAULT_PAGE_SIZE})",
    )
    conv_list.add_argument(
        "--conv-type", choices=sorted(_CONV_TYPES), help="only conversations of this type"
    )
    conv_list.add_argument(
        "--mark",
        dest="filter_mark",
        metavar="MARK",
        help="only conversations with this mark (star, unread, fold, hide, or a number such "
        "as 0x100000000); none: only unmarked ones",
    )
    conv_list.add_argument(
        "--group",
        dest="filter_group",
        metavar="NAME",
        help='only the conversations of this conversation group; "": only those in no group',
    )
    drafts = conv_list.add_mutually_exclusive_group()
    drafts.add_argument(
        "--has-draft", dest="has_draft", action="store_const", const=True, help="only with a draft"
    )
    drafts.add_argument(
        "--no-draft", dest="has_draft", action="store_const", const=False, help="only without"
    )
    for name, help_text, run in (
        ("mark", "set a mark on conversations", _cmd_conv_mark),
        ("unmark", "clear a mark on conversations", _cmd_conv_unmark),
    ):
        sub = command(name, help_text, conv_commands)
        _convs_argument(sub, "+")
        sub.add_argument(
            "--mark",
            required=True,
            metavar="MARK",
            help="star, unread, fold, hide, or a custom mark 1 << n (32 <= n < 64) as a number",
        )
        sub.set_defaults(run=run, needs_user=True)

    group = command("group", "list and change conversation groups")
    group_commands = group.add_subparsers(dest="group_command", metavar="ACTION", required=True)
    group_list = command("list", "list the conversation groups", group_commands)
    group_list.set_defaults(run=_cmd_group_list, needs_user=True)
    group_create = command(
        "create", "create a conversation group (with conversations in it)", group_commands
    )
    group_create.add_argument("name", metavar="NAME", help="1..32 bytes of UTF-8")
    _convs_argument(group_create, "*")
    group_create.set_defaults(run=_cmd_group_create, needs_user=True)
    group_delete = command("delete", "delete a conversation group", group_commands)
    group_delete.add_argument("name", metavar="NAME")
    group_delete.set_defaults(run=_cmd_group_delete, needs_user=True)
    group_rename = command("rename", "rename a conversation group", group_commands)
    group_rename.add_argument("name", metavar="OLD")
    group_rename.add_argument("new_name", metavar="NEW")
    group_rename.set_defaults(run=_cmd_group_rename, needs_user=True)
    for name, help_text, run in (
        ("add", "add conversations to a conversation group", _cmd_group_add),
        ("remove", "remove conversations from a conversation group", _cmd_group_remove),
    ):
        sub = command(name, help_text, group_commands)
        sub.add_argument("name", metavar="NAME")
        _convs_argument(sub, "+")
        sub.set_defaults(run=run, needs_user=True)

    for name, help_text, run in (
        ("get", "show a conversation", _cmd_conv_get),
        ("create", "create a conversation (or show the existing one)", _cmd_conv_create),
        ("delete", "delete a conversation and its draft", _cmd_conv_delete),
        ("pin", "pin a conversation", _cmd_conv_pin),
        ("unpin", "unpin a conversation", _cmd_conv_unpin),
    ):
        sub = command(name, help_text, conv_commands)
        _conv_argument(sub)
        sub.set_defaults(run=run, needs_user=True)

    delete_many = command(
        "delete-many",
        "delete up to 100 conversations and their drafts at once",
        conv_commands,
    )
    _convs_argument(delete_many)
    delete_many.set_defaults(run=_cmd_conv_delete_many, needs_user=True)
    custom_data = command(
        "set-custom-data",
        "set the custom data of up to 100 conversations (shown in conv get --json)",
        conv_commands,
    )
    _convs_argument(custom_data)
    custom_data.add_argument(
        "--data",
        required=True,
        metavar="TEXT",
        help='the custom data, at most 256 bytes of UTF-8; "" removes it',
    )
    custom_data.set_defaults(run=_cmd_conv_set_custom_data, needs_user=True)

    draft = command("draft", "read and write drafts")
    draft_commands = draft.add_subparsers(dest="draft_command", metavar="ACTION", required=True)
    draft_get = command("get", "print a conversation's draft text", draft_commands)
    _conv_argument(draft_get)
    draft_get.set_defaults(run=_cmd_draft_get, needs_user=True)
    draft_set = command(
        "set",
        "set a conversation's draft text (creating the conversation if needed)",
        draft_commands,
    )
    _conv_argument(draft_set)
    draft_set.add_argument(
        "text",
        nargs="?",
        metavar="TEXT",
        help="the text; without it, or with -, read from stdin (one trailing newline is "
        "dropped); an empty text clears the draft",
    )
    draft_set.add_argument(
        "--if-revision", type=int, help="only if the draft is still at this revision"
    )
    draft_set.set_defaults(run=_cmd_draft_set, needs_user=True, late_positional="text")
    draft_clear = command("clear", "clear a conversation's draft", draft_commands)
    _conv_argument(draft_clear)
    draft_clear.add_argument(
        "--if-revision", type=int, help="only if the draft is still at this revision"
    )
    draft_clear.set_defaults(run=_cmd_draft_clear, needs_user=True)
    draft_history = command(
        "history",
        "list a conversation's earlier drafts, newest first (each set, clear or restore keeps "
        "the draft it replaced)",
        draft_commands,
    )
    _conv_argument(draft_history)
    draft_history.add_argument(
        "--count", type=int, default=DEFAULT_DRAFT_HISTORY, help="at most this many (1..1000)"
    )
    draft_history.set_defaults(run=_cmd_draft_history, needs_user=True)
    draft_restore = command(
        "restore",
        "make an earlier draft (its REVISION from `draft history`) the current one again",
        draft_commands,
    )
    _conv_argument(draft_restore)
    draft_restore.add_argument(
        "revision", type=int, metavar="REVISION", help="the version's revision"
    )
    draft_restore.add_argument(
        "--if-revision", type=int, help="only if the current draft is still at this revision"
    )
    draft_restore.set_defaults(run=_cmd_draft_restore, needs_user=True)

    backup = command("backup", "have the daemon write a copy of its database", commands)
    backup.add_argument("path", type=Path, help="the file to write (made absolute here)")
    backup.add_argument("--overwrite", action="store_true", help="replace an existing file")
    backup.set_defaults(run=_cmd_backup, needs_user=False)

    watch = command(
        "watch",
        "print conversation events as they happen, until interrupted (Ctrl-C exits 0)",
        commands,
    )
    watch.add_argument("--since", type=int, help="first replay the changes after this seq")
    watch.add_argument("--count", type=int, help="stop after this many events")
    watch.add_argument(
        "-q", "--quiet", action="store_true", help="no 'watching ...' notice on stderr"
    )
    watch.set_defaults(run=_cmd_watch, needs_user=True)
    return parser


# -- output ----------------------------------------------------------------------------------


def _print_json(value: Any) -> None:
    sys.stdout.write(json.dumps(msgspec.to_builtins(value), indent=2, ensure_ascii=False) + "\n")


def _json_line(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


class _Table:
    """A table printed in chunks: the columns are as wide as the widest cell seen so far.

    The first chunk (for ``conv list``, the first page) sets the widths; a later, wider cell
    widens its column from that chunk on. Nothing but the widths is kept, so printing a
    long list takes memory for one page, not for the list.
    """

    def __init__(self, header: list[str]) -> None:
        self._header: list[str] | None = header
        self._widths = [len(cell) for cell in header]

    def write(self, rows: list[list[str]]) -> None:
        """Print ``rows`` (the header first, before the first rows)."""
        chunk = rows if self._header is None else [self._header, *rows]
        self._header = None
        for row in chunk:
            self._widths = [max(w, len(cell)) for w, cell in zip(self._widths, row, strict=True)]
        sys.stdout.write(
            "".join(
                "  ".join(c.ljust(w) for c, w in zip(row, self._widths, strict=True)).rstrip()
                + "\n"
                for row in chunk
            )
        )


def _table(rows: list[list[str]], header: list[str]) -> None:
    _Table(header).write(rows)


def _draft_of(info: ConvInfo) -> str | None:
    return draft_text(None if isinstance(info.conv_draft, msgspec.UnsetType) else info.conv_draft)


def _conv_row(info: ConvInfo) -> list[str]:
    draft = _draft_of(info)
    shown = "" if draft is None else (draft if len(draft) <= 40 else draft[:37] + "...")
    return [
        conversation_id(info.conv_id, info.conv_type),
        "yes" if info.conv_is_pinned else "",
        str(info.conv_active_time & ~_PINNED_BIT),
        str(info.conv_draft_revision),
        shown.replace("\n", " "),
    ]


_CONV_HEADER = ["CONVERSATION", "PINNED", "ORDER", "REV", "DRAFT"]


def _show_conv(args: argparse.Namespace, info: ConvInfo) -> None:
    if args.json:
        _print_json(info)
    else:
        _table([_conv_row(info)], _CONV_HEADER)


def _event_lines(event: ConvEvent) -> list[str]:
    """``watch``'s plain output: one line per conversation the event names."""
    name = TIMConvEvent(event.event).name.removeprefix("kTIMConvEvent_")
    if not event.conversations:  # Del: only the keys
        return [f"{event.seq} {name} {conversation_id(k.conv_id, k.conv_type)}" for k in event.keys]
    lines = []
    for info in event.conversations:
        line = f"{event.seq} {name} {conversation_id(info.conv_id, info.conv_type)}"
        if info.conv_is_pinned:
            line += " pinned"
        line += f" rev {info.conv_draft_revision}"
        text = _draft_of(info)
        if text is not None:
            line += " draft " + json.dumps(text, ensure_ascii=False)
        lines.append(line)
    return lines


def _event_json(event: ConvEvent) -> dict[str, Any]:
    return {
        "seq": event.seq,
        "event": int(event.event),
        "conversation_ids": [conversation_id(k.conv_id, k.conv_type) for k in event.keys],
        "conv_array": event.conv_array,
        "origin": event.origin,
    }


def _stdout_closed() -> None:
    """The reader of stdout went away: drop what is still buffered, print nothing more."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, sys.stdout.fileno())
    finally:
        os.close(devnull)


def _watchable_stdout() -> int | None:
    """stdout's descriptor when it is a pipe or a socket (whose reader can go away)."""
    try:
        fd = sys.stdout.fileno()
        mode = os.fstat(fd).st_mode
    except (AttributeError, ValueError, OSError):  # replaced (tests), closed, or no fd
        return None
    return fd if stat.S_ISFIFO(mode) or stat.S_ISSOCK(mode) else None


async def _wait_reader_gone(fd: int) -> None:
    """Return once the reader of pipe or socket ``fd`` has gone away (POLLERR/POLLHUP).

    A worker thread blocks in poll(2) on ``fd`` (no events asked for, so only POLLERR,
    POLLHUP and POLLNVAL wake it) and on a private pipe that wakes it when this is cancelled.
    """
    wake_read, wake_write = os.pipe()

    def wait() -> bool:
        poller = select.poll()
        poller.register(fd, 0)
        poller.register(wake_read, select.POLLIN)
        while True:
            for ready, _ in poller.poll():
                if ready == wake_read:
                    return False
                if ready == fd:
                    return True

    try:
        async with anyio.create_task_group() as group:
            gone = anyio.Event()

            async def poll_in_thread() -> None:
                if await anyio.to_thread.run_sync(wait):
                    gone.set()

            group.start_soon(poll_in_thread)
            try:
                await gone.wait()
            finally:
                # Wake the thread, whether the reader went away or this was cancelled.
                os.write(wake_write, b"x")
    finally:
        os.close(wake_read)
        os.close(wake_write)


# -- commands ----------------------------------------------------------------------------------


def _checked_key(key: ConvKey, shown: str) -> ConvKey:
    """``key`` if its id is one the SDK accepts (the daemon's 7003/8501 rules), else UsageError."""
    group = key.conv_type == TIMConvType.kTIMConv_Group
    limit = MAX_GROUP_ID_BYTES if group else MAX_USER_ID_BYTES
    if len(key.conv_id) > limit or not all(" " <= ch <= "~" for ch in key.conv_id):
        kind = "a group id" if group else "a user id"
        raise UsageError(
            f"invalid conversation {shown!r}: {kind} is 1..{limit} bytes of printable ASCII"
        )
    return key


def _conv_key(text: str, conv_type: str | None = None) -> ConvKey:
    if conv_type is not None:
        if not text:
            raise UsageError("CONV is empty")
        return _checked_key(ConvKey(conv_id=text, conv_type=_CONV_TYPES[conv_type]), text)
    key = parse_conversation_id(text)
    if key is not None:
        return _checked_key(key, text)
    if not text or text.startswith(("c2c_", "group_")):
        raise UsageError(f"invalid conversation {text!r}: use c2c_<userID> or group_<groupID>")
    return _checked_key(ConvKey(conv_id=text, conv_type=TIMConvType.kTIMConv_C2C), text)


def _read_stdin_text() -> str:
    if sys.stdin is None:
        raise UsageError("no TEXT given and no stdin to read it from")
    if sys.stdin.isatty():
        sys.stderr.write("convctl: reading the draft from stdin (end it with Ctrl-D)\n")
    try:
        text: str = sys.stdin.buffer.read().decode("utf-8")
    except UnicodeDecodeError as exc:
        raise UsageError(f"the draft on stdin is not UTF-8: {exc}") from exc
    if text.endswith("\n"):
        text = text[:-1].removesuffix("\r")
    return text


async def _cmd_call(client: Client, args: argparse.Namespace) -> int:
    _print_json(await client.call(args.method, args.call_params))
    return EXIT_OK


async def _cmd_status(client: Client, args: argparse.Namespace) -> int:
    status = await client.daemon_status()
    if args.json:
        _print_json(status)
    else:
        for name, value in msgspec.structs.asdict(status).items():
            sys.stdout.write(f"{name}: {value}\n")
    return EXIT_OK


async def _cmd_conv_list(client: Client, args: argparse.Namespace) -> int:
    """Print the list page by page, as the pages arrive (memory: one page, not the list).

    ``--json`` streams one array, one ConvInfo per line. A conversation can come back on a
    later page only if it moved down the list meanwhile, and only unpinning moves one down
    (activation moves it up, past the pages already read): so only the pinned ones printed
    are remembered (at most a few dozen), to print each conversation once.
    """
    table = _Table(_CONV_HEADER)
    pinned_seen: set[tuple[str, int]] = set()
    printed = 0
    next_seq = 0
    where: ConvListFilter | None = getattr(args, "list_filter", None)
    while True:
        if where is None:
            page = await client.conv_list(next_seq, args.page_size)
        else:
            page = await client.conv_list_by_filter(where, next_seq, args.page_size)
        convs = []
        for info in page.conversation_list_result_conv_list:
            key = (info.conv_id, int(info.conv_type))
            if key in pinned_seen:
                continue
            if info.conv_is_pinned:
                pinned_seen.add(key)
            convs.append(info)
        if args.json:
            sys.stdout.write(
                "".join(
                    ("[\n" if printed + i == 0 else ",\n") + _json_line(msgspec.to_builtins(info))
                    for i, info in enumerate(convs)
                )
            )
        elif convs or printed == 0:
            table.write([_conv_row(info) for info in convs])
        printed += len(convs)
        sys.stdout.flush()
        if page.conversation_list_result_is_finished:
            break
        next_seq = page.conversation_list_result_next_seq
    if args.json:
        sys.stdout.write("[]\n" if printed == 0 else "\n]\n")
    return EXIT_OK


async def _one(client: Client, key: ConvKey) -> ConvInfo:
    found = await client.conv_get([key])
    if not found:
        raise ConvdError.from_wire(
            TIMErrCode.ERR_INVALID_CONVERSATION,
            f"no conversation {conversation_id(key.conv_id, key.conv_type)}",
        )
    return found[0]


async def _cmd_conv_get(client: Client, args: argparse.Namespace) -> int:
    _show_conv(args, await _one(client, args.key))
    return EXIT_OK


async def _cmd_conv_create(client: Client, args: argparse.Namespace) -> int:
    key: ConvKey = args.key
    _show_conv(args, await client.conv_create(key.conv_id, key.conv_type))
    return EXIT_OK


def _done(args: argparse.Namespace, what: str) -> int:
    """A change with no result: ``{}`` with --json, else one line saying what happened."""
    if args.json:
        _print_json({})
    else:
        key: ConvKey = args.key
        sys.stdout.write(f"{what} {conversation_id(key.conv_id, key.conv_type)}\n")
    return EXIT_OK


async def _cmd_conv_delete(client: Client, args: argparse.Namespace) -> int:
    key: ConvKey = args.key
    await client.conv_delete(key.conv_id, key.conv_type)
    return _done(args, "deleted")


async def _cmd_conv_pin(client: Client, args: argparse.Namespace) -> int:
    key: ConvKey = args.key
    await client.conv_pin(key.conv_id, key.conv_type, True)
    return _done(args, "pinned")


async def _cmd_conv_unpin(client: Client, args: argparse.Namespace) -> int:
    key: ConvKey = args.key
    await client.conv_pin(key.conv_id, key.conv_type, False)
    return _done(args, "unpinned")


def _batch_done(args: argparse.Namespace, what: str, results: list[ConvOperationResult]) -> int:
    """A batch change's results: with --json the array, else one line naming the
    conversations it was done to; each failed one on stderr. Exit 1 if any failed."""
    done = [conversation_id(r.conv_id, r.conv_type) for r in results if r.result_code == 0]
    if args.json:
        _print_json(
            [
                {"conversation_id": conversation_id(r.conv_id, r.conv_type)}
                | msgspec.structs.asdict(r)
                for r in results
            ]
        )
    elif done:
        sys.stdout.write(f"{what} {' '.join(done)}\n")
    failed = [r for r in results if r.result_code != 0]
    for result in failed:
        name = conversation_id(result.conv_id, result.conv_type)
        message = (
            f"no conversation {name}"
            if result.result_code == TIMErrCode.ERR_INVALID_CONVERSATION
            else result.result_info
        )
        _fail(f"{name}: error {result.result_code}: {message}")
    return EXIT_ERROR if failed else EXIT_OK


async def _cmd_conv_delete_many(client: Client, args: argparse.Namespace) -> int:
    results = await client.conv_delete_many(args.keys)
    return _batch_done(args, "deleted", results)


async def _cmd_conv_set_custom_data(client: Client, args: argparse.Namespace) -> int:
    results = await client.conv_set_custom_data(args.keys, args.data)
    return _batch_done(args, "set custom data of", results)


async def _cmd_draft_get(client: Client, args: argparse.Namespace) -> int:
    info = await _one(client, args.key)
    draft = None if isinstance(info.conv_draft, msgspec.UnsetType) else info.conv_draft
    if args.json:
        _print_json(
            {"text": draft_text(draft), "revision": info.conv_draft_revision, "draft": draft}
        )
    elif draft is not None:
        sys.stdout.write((draft_text(draft) or "") + "\n")
    return EXIT_OK


async def _cmd_draft_set(client: Client, args: argparse.Namespace) -> int:
    key: ConvKey = args.key
    info = await client.conv_set_draft(
        key.conv_id, key.conv_type, args.text, if_revision=args.if_revision
    )
    if args.json:
        _print_json(info)
    else:
        sys.stdout.write(f"revision {info.conv_draft_revision}\n")
    return EXIT_OK


async def _cmd_draft_clear(client: Client, args: argparse.Namespace) -> int:
    key: ConvKey = args.key
    info = await client.conv_cancel_draft(key.conv_id, key.conv_type, if_revision=args.if_revision)
    if args.json:
        _print_json(info)
    else:
        sys.stdout.write(f"revision {info.conv_draft_revision}\n")
    return EXIT_OK


def _version_line(version: DraftVersion) -> str:
    """``draft history``'s plain output: one line per version."""
    when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(version.replaced_at))
    text = draft_text(version.draft) or ""
    shown = text if len(text) <= 60 else text[:57] + "..."
    how = {"set": "overwritten", "cancel": "cleared", "restore": "replaced by a restore"}
    return (
        f"rev {version.revision}  {when}  "
        f"{how.get(version.replaced_how, version.replaced_how)} by {version.replaced_by}  "
        + json.dumps(shown, ensure_ascii=False)
    )


async def _cmd_draft_history(client: Client, args: argparse.Namespace) -> int:
    key: ConvKey = args.key
    result = await client.conv_draft_history(key.conv_id, key.conv_type, args.count)
    if args.json:
        _print_json(result)
    else:
        sys.stdout.write(f"current revision {result.conv_draft_revision}\n")
        sys.stdout.write("".join(_version_line(v) + "\n" for v in result.versions))
    return EXIT_OK


async def _cmd_draft_restore(client: Client, args: argparse.Namespace) -> int:
    key: ConvKey = args.key
    info = await client.conv_restore_draft(
        key.conv_id, key.conv_type, args.revision, if_revision=args.if_revision
    )
    if args.json:
        _print_json(info)
    else:
        sys.stdout.write(f"revision {info.conv_draft_revision}\n")
    return EXIT_OK


async def _cmd_conv_mark(client: Client, args: argparse.Namespace) -> int:
    return _batch_done(args, "marked", await client.conv_mark(args.keys, args.mark_value, True))


async def _cmd_conv_unmark(client: Client, args: argparse.Namespace) -> int:
    return _batch_done(args, "unmarked", await client.conv_mark(args.keys, args.mark_value, False))


async def _cmd_group_list(client: Client, args: argparse.Namespace) -> int:
    names = await client.conv_group_list()
    if args.json:
        _print_json(names)
    else:
        sys.stdout.write("".join(name + "\n" for name in names))
    return EXIT_OK


async def _cmd_group_create(client: Client, args: argparse.Namespace) -> int:
    results = await client.conv_group_create(args.name, args.keys)
    if not results and not args.json:
        sys.stdout.write(f"created {args.name}\n")
        return EXIT_OK
    return _batch_done(args, f"created {args.name} with", results)


def _group_done(args: argparse.Namespace, what: str) -> int:
    if args.json:
        _print_json({})
    else:
        sys.stdout.write(f"{what}\n")
    return EXIT_OK


async def _cmd_group_delete(client: Client, args: argparse.Namespace) -> int:
    await client.conv_group_delete(args.name)
    return _group_done(args, f"deleted {args.name}")


async def _cmd_group_rename(client: Client, args: argparse.Namespace) -> int:
    await client.conv_group_rename(args.name, args.new_name)
    return _group_done(args, f"renamed {args.name} to {args.new_name}")


async def _cmd_group_add(client: Client, args: argparse.Namespace) -> int:
    return _batch_done(
        args, f"added to {args.name}:", await client.conv_group_add(args.name, args.keys)
    )


async def _cmd_group_remove(client: Client, args: argparse.Namespace) -> int:
    return _batch_done(
        args,
        f"removed from {args.name}:",
        await client.conv_group_remove(args.name, args.keys),
    )


async def _cmd_backup(client: Client, args: argparse.Namespace) -> int:
    result = await client.daemon_backup(args.path, overwrite=args.overwrite)
    if args.json:
        _print_json(result)
    else:
        sys.stdout.write(
            f"wrote {result.path} ({result.size_bytes} bytes, schema {result.schema_version})\n"
        )
    return EXIT_OK


async def _cmd_watch(client: Client, args: argparse.Namespace) -> int:
    limit = math.inf if args.count is None else args.count
    seen = 0
    done = anyio.Event()

    def emit(lines: list[str]) -> None:
        # Listener exceptions are swallowed by the client: a closed stdout must end the
        # watch here. Every line is flushed at once, so `convctl watch | jq` is live.
        try:
            for line in lines:
                sys.stdout.write(line + "\n")
            sys.stdout.flush()
        except BrokenPipeError:
            _stdout_closed()
            done.set()

    def on_event(event: ConvEvent) -> None:
        nonlocal seen
        if seen >= limit or done.is_set():
            return
        seen += 1
        if args.json:
            emit([_json_line(_event_json(event))])
        else:
            emit(_event_lines(event))
        if seen >= limit:
            done.set()

    def on_resync(resync: Resync) -> None:
        if done.is_set():
            return
        if args.json:
            line = {"seq": resync.seq, "resync": msgspec.to_builtins(resync.conversations)}
            emit([_json_line(line)])
        else:
            emit([f"{resync.seq} Resync ({len(resync.conversations)} conversations)"])

    client.add_event_listener(on_event)
    client.add_resync_listener(on_resync)
    subscribed = await client.subscribe(args.since)
    if limit == 0:
        return EXIT_OK
    if not args.quiet:
        sys.stderr.write(
            f"convctl: watching {args.user}'s conversations, now at seq {subscribed.seq}"
            " (Ctrl-C stops)\n"
        )
        sys.stderr.flush()
    stdout_fd = _watchable_stdout()
    if stdout_fd is None:
        await done.wait()
        return EXIT_OK
    # Stop as soon as the reader goes away (`convctl watch | head -2`), not at the next
    # event, which may come much later or never.
    async with anyio.create_task_group() as group:

        async def reader_gone() -> None:
            await _wait_reader_gone(stdout_fd)
            _stdout_closed()
            done.set()

        group.start_soon(reader_gone)
        await done.wait()
        group.cancel_scope.cancel()
    return EXIT_OK


# -- main --------------------------------------------------------------------------------------


def _fail(message: str) -> None:
    sys.stderr.write(f"convctl: {message}\n")


async def _run(args: argparse.Namespace) -> int:
    quiet_cancelled_read_race()
    run: Callable[[Client, argparse.Namespace], Awaitable[int]] = args.run
    async with Client(
        args.socket,
        timeout=args.timeout,
        reconnect=args.command == "watch",
        require_connection=True,
    ) as client:
        if args.user:
            await client.login(args.user, args.sdk_app_id)
        return await run(client, args)


def _usage(parser: argparse.ArgumentParser, message: str) -> NoReturn:
    parser.error(message)


#: A number argparse takes as a positional, not an option (its own pattern).
_NEGATIVE = re.compile(r"-\d+$|-\d*\.\d+$")


def _parse(parser: argparse.ArgumentParser, argv: list[str] | None) -> argparse.Namespace:
    """``parser.parse_args(argv)``, but for an optional last positional given after an
    option (``draft set CONV --if-revision N TEXT``): argparse fills the positionals that
    precede an option together, TEXT with nothing, and would refuse the TEXT after it."""
    args, extras = parser.parse_known_args(argv)
    late = getattr(args, "late_positional", None)
    if late is not None and getattr(args, late) is None:
        # What argparse itself takes as a positional: a word, "-", a negative number, or
        # anything after "--".
        if len(extras) == 2 and extras[0] == "--":
            setattr(args, late, extras.pop())
            extras.clear()
        elif len(extras) == 1 and (
            not extras[0].startswith("-") or extras[0] == "-" or _NEGATIVE.fullmatch(extras[0])
        ):
            setattr(args, late, extras.pop())
    if extras:
        parser.error(f"unrecognized arguments: {' '.join(extras)}")
    return args


def _argument_names(*parsers: argparse.ArgumentParser) -> dict[str, str]:
    """How the command line names each argument, by its dest: an option by its long name, a
    positional by its metavar."""
    names = {"user": f"--user (or ${USER_ENV})"}
    for parser in parsers:
        for action in parser._actions:
            if action.dest not in names:
                option = action.option_strings[-1] if action.option_strings else None
                names[action.dest] = option or str(action.metavar or action.dest.upper())
    return names


def _is_unicode(text: str) -> bool:
    try:
        text.encode()
    except UnicodeEncodeError:
        return False
    return True


def _prepare(top: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """Check and complete the arguments before connecting (usage errors exit 2 here)."""
    # Print the usage of the subcommand the error is about.
    parser: argparse.ArgumentParser = getattr(args, "command_parser", top)
    if args.user is None:
        args.user = os.environ.get(USER_ENV) or None
    if args.needs_user and not args.user:
        _usage(parser, f"{args.command} needs a user: pass --user or set {USER_ENV}")
    try:
        checked_seconds("--timeout", args.timeout)  # the rule Client applies
    except ValueError:
        _usage(parser, "--timeout must be positive and finite")
    names = _argument_names(top, parser)
    for dest, value in vars(args).items():
        # Bytes that are not UTF-8 arrive as lone surrogates (surrogateescape): no request
        # can carry them. (The socket's path is only used here, never sent.)
        for text in value if isinstance(value, list) else [value]:
            if isinstance(text, str | Path) and dest != "socket" and not _is_unicode(str(text)):
                _usage(parser, f"{names.get(dest, dest)} is not valid UTF-8: {str(text)!r}")
    if args.command == "call":
        args.call_params = None
        if args.params is not None:
            try:
                args.call_params = json.loads(args.params)
            except ValueError as exc:
                _usage(parser, f"PARAMS is not valid JSON: {exc}")
            if not isinstance(args.call_params, dict):
                _usage(parser, "PARAMS must be a JSON object (params are by name)")
    for option in ("count", "since", "if_revision"):
        value = getattr(args, option, None)
        if value is not None and value < 0:
            _usage(parser, f"--{option.replace('_', '-')} must not be negative")
    if getattr(args, "revision", None) is not None and args.revision < 0:
        _usage(parser, "REVISION must not be negative")
    if getattr(args, "draft_command", None) == "history" and not (
        1 <= args.count <= MAX_DRAFT_HISTORY
    ):
        _usage(parser, f"--count must be 1..{MAX_DRAFT_HISTORY}")
    if getattr(args, "page_size", None) is not None and not 1 <= args.page_size <= 1000:
        _usage(parser, "--page-size must be 1..1000")
    try:
        if hasattr(args, "conv"):
            args.key = _conv_key(args.conv, args.conv_type)
        if hasattr(args, "convs"):
            args.keys = [_conv_key(conv, args.conv_type) for conv in args.convs]
        if hasattr(args, "convs"):
            args.keys = [_conv_key(conv, args.conv_type) for conv in args.convs]
        if hasattr(args, "mark") and args.mark is not None:
            args.mark_value = _mark_value(args.mark)
        if args.command == "conv" and args.conv_command == "list":
            args.list_filter = _list_filter(args)
        if hasattr(args, "text") and args.text in (None, "-"):
            args.text = _read_stdin_text()
    except UsageError as exc:
        _usage(parser, str(exc))


def _list_filter(args: argparse.Namespace) -> ConvListFilter | None:
    """``conv list``'s filter, or None when no filter option was given."""
    conv_type = getattr(args, "conv_type", None)
    mark = getattr(args, "filter_mark", None)
    group = getattr(args, "filter_group", None)
    has_draft = getattr(args, "has_draft", None)
    if conv_type is None and mark is None and group is None and has_draft is None:
        return None
    return ConvListFilter(
        conversation_list_filter_conv_type=(
            msgspec.UNSET if conv_type is None else _CONV_TYPES[conv_type]
        ),
        conversation_list_filter_mark_type=msgspec.UNSET if mark is None else _mark_value(mark),
        conversation_list_filter_conversation_group=msgspec.UNSET if group is None else group,
        conversation_list_filter_has_draft=msgspec.UNSET if has_draft is None else has_draft,
    )


def _socket_path(args: argparse.Namespace) -> Path:
    """The socket convctl connects to: --socket, else $CONVD_SOCKET, else the default."""
    path: Path = args.socket if args.socket is not None else default_socket_path()
    return path.absolute()


def _unreachable_reason(path: Path, reason: str) -> str:
    """Why ``path`` could not be connected to, in words that fit what is there."""
    try:
        mode = os.stat(path).st_mode
    except OSError:
        return reason
    if stat.S_ISDIR(mode):
        return "that is a directory, not a socket (--socket and $CONVD_SOCKET name the socket)"
    if stat.S_ISREG(mode):
        return "that is a regular file, not a socket"
    if not stat.S_ISSOCK(mode):
        return "that is not a socket"
    return reason


def _error_message(args: argparse.Namespace, exc: ConvdError) -> str:
    """The daemon's error as one human line (structured data goes to --json output only)."""
    message = exc.description
    key: ConvKey | None = getattr(args, "key", None)
    if exc.code == TIMErrCode.ERR_INVALID_CONVERSATION and key is not None:
        # One wording for "not found", whichever command asked.
        message = f"no conversation {conversation_id(key.conv_id, key.conv_type)}"
    elif (
        exc.code == ConvdErrCode.BACKUP_FAILED
        and isinstance(exc.data, dict)
        and exc.data.get("errno") == "EEXIST"
    ):
        message = f"{exc.data.get('path')} already exists; choose another path or pass --overwrite"
    elif exc.code == ConvdErrCode.DRAFT_REVISION_CONFLICT:
        # data is the current ConvInfo (null: the conversation is gone, so revision 0).
        current = exc.data.get("conv_draft_revision", 0) if isinstance(exc.data, dict) else 0
        expected = getattr(args, "if_revision", None)
        message = f"draft revision is {current}" + ("" if expected is None else f", not {expected}")
    elif exc.code == ConvdErrCode.DRAFT_VERSION_NOT_FOUND:
        message = (
            f"no revision {getattr(args, 'revision', '?')} in the draft history (see "
            "`convctl draft history`)"
        )
    elif isinstance(exc.data, str) and exc.data:
        message = f"{exc.message}: {exc.data}"  # e.g. which param was invalid
    return f"error {exc.code}: {message}"


def main(argv: list[str] | None = None) -> int:
    """Run ``convctl`` with ``argv`` (default: the command line); return the exit status."""
    parser = build_parser()
    args = _parse(parser, argv)
    try:
        _prepare(parser, args)
        if args.command == "socket-path":  # needs no daemon
            path = str(_socket_path(args))
            sys.stdout.write(_json_line({"socket_path": path}) if args.json else path)
            sys.stdout.write("\n")
            status = EXIT_OK
        else:
            status = anyio.run(_run, args, backend="asyncio")
        sys.stdout.flush()  # here, so that a closed stdout is handled below
        return status
    except DaemonUnavailable as exc:
        _fail(
            f"cannot reach convd at {exc.socket_path}: "
            f"{_unreachable_reason(exc.socket_path, exc.reason)}"
        )
        hint = (
            "hint: start it with `convd` (or `systemctl --user start convd.socket`), or point "
            f"--socket / ${SOCKET_ENV} at its socket"
        )
        if args.socket is None and not os.environ.get(SOCKET_ENV) and default_runtime_dir()[1]:
            hint += (
                "; XDG_RUNTIME_DIR is unset, so this is the fallback path: a convd started "
                "with XDG_RUNTIME_DIR set listens elsewhere"
            )
        sys.stderr.write(hint + "\n")
        return EXIT_UNREACHABLE
    except ConvdError as exc:
        _fail(_error_message(args, exc))
        if args.json:
            error = {"code": exc.code, "message": exc.message, "data": exc.data}
            _print_json({"error": error})
            sys.stdout.flush()
        return EXIT_ERROR
    except ConvdClientError as exc:
        _fail(str(exc))
        return EXIT_ERROR
    except BrokenPipeError:
        _stdout_closed()
        return EXIT_OK
    except KeyboardInterrupt:
        return EXIT_OK if args.command == "watch" else EXIT_INTERRUPTED


if __name__ == "__main__":
    raise SystemExit(main())
