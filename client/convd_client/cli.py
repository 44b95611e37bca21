"""``convctl``: talk to a running convd from the shell.

Exit status: 0 success; 1 the daemon answered with an error (code and message on stderr),
or did not answer in time; 2 usage error; 3 the daemon cannot be reached (the socket path
tried and a hint on stderr); 130 interrupted (Ctrl-C), except ``watch``, which stops with 0.
A closed stdout (``convctl ... | head -n1``) ends the command quietly with 0.

Conversations are named by their V2 ids, ``c2c_<userID>`` and ``group_<groupID>``; a bare id
means a C2C conversation. With ``--type c2c|group`` the name is the raw user or group id.

``--json`` output (stable; one JSON document per command, one line per event for ``watch``):

* ``status``: the ``daemon.status`` result; ``call``: the method's result as it is;
* ``conv list``: an array of ConvInfo; ``conv get`` / ``conv create``: one ConvInfo;
* ``conv delete`` / ``pin`` / ``unpin``: ``{}``;
* ``draft get``: ``{"text": str|null, "revision": int, "draft": Draft|null}``;
* ``draft set`` / ``draft clear``: the ConvInfo after the change;
* ``backup``: the ``daemon.backup`` result;
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
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, NoReturn

import anyio
import msgspec

from convd_schemas import ConvInfo, ConvKey, TIMConvEvent, TIMConvType, __version__
from convd_schemas.paths import SOCKET_ENV

from .client import Client, ConvEvent, Resync
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

output:
  Tables and plain text by default. With --json: one JSON document per command, and
  one JSON line per event for `watch` (shapes: see the README's "Scripting" section).

exit status:
  0    ok
  1    convd answered with an error (its code and message on stderr), or did not
       answer in time
  2    usage error
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
        help=f"convd's socket (default: ${SOCKET_ENV}, else $XDG_RUNTIME_DIR/convd/convd.sock)",
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
        return sub

    call = command("call", "call any method and print its result as JSON")
    call.add_argument("method", help="e.g. daemon.status, conv.list")
    call.add_argument("params", nargs="?", help="params as a JSON object")
    call.set_defaults(run=_cmd_call, needs_user=False)

    status = command("status", "show the daemon's status")
    status.set_defaults(run=_cmd_status, needs_user=False)

    conv = command("conv", "list and change conversations")
    conv_commands = conv.add_subparsers(dest="conv_command", metavar="ACTION", required=True)
    conv_list = command("list", "list the conversations", conv_commands)
    conv_list.set_defaults(run=_cmd_conv_list, needs_user=True)
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
    draft_set.set_defaults(run=_cmd_draft_set, needs_user=True)
    draft_clear = command("clear", "clear a conversation's draft", draft_commands)
    _conv_argument(draft_clear)
    draft_clear.add_argument(
        "--if-revision", type=int, help="only if the draft is still at this revision"
    )
    draft_clear.set_defaults(run=_cmd_draft_clear, needs_user=True)

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


def _table(rows: list[list[str]], header: list[str]) -> None:
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
    for row in [header, *rows]:
        sys.stdout.write(
            "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
            + "\n"
        )


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


def _show_convs(args: argparse.Namespace, convs: list[ConvInfo]) -> None:
    if args.json:
        _print_json(convs)
    else:
        _table([_conv_row(c) for c in convs], _CONV_HEADER)


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


# -- commands ----------------------------------------------------------------------------------


def _conv_key(text: str, conv_type: str | None = None) -> ConvKey:
    if conv_type is not None:
        if not text:
            raise UsageError("CONV is empty")
        return ConvKey(conv_id=text, conv_type=_CONV_TYPES[conv_type])
    key = parse_conversation_id(text)
    if key is not None:
        return key
    if not text or text.startswith(("c2c_", "group_")):
        raise UsageError(f"invalid conversation {text!r}: use c2c_<userID> or group_<groupID>")
    return ConvKey(conv_id=text, conv_type=TIMConvType.kTIMConv_C2C)


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
    _show_convs(args, await client.conv_list_all())
    return EXIT_OK


async def _one(client: Client, key: ConvKey) -> ConvInfo:
    found = await client.conv_get([key])
    if not found:
        raise ConvdError(6004, f"no conversation {conversation_id(key.conv_id, key.conv_type)}")
    return found[0]


async def _cmd_conv_get(client: Client, args: argparse.Namespace) -> int:
    _show_conv(args, await _one(client, args.key))
    return EXIT_OK


async def _cmd_conv_create(client: Client, args: argparse.Namespace) -> int:
    key: ConvKey = args.key
    _show_conv(args, await client.conv_create(key.conv_id, key.conv_type))
    return EXIT_OK


def _done_empty(args: argparse.Namespace) -> int:
    if args.json:
        _print_json({})
    return EXIT_OK


async def _cmd_conv_delete(client: Client, args: argparse.Namespace) -> int:
    key: ConvKey = args.key
    await client.conv_delete(key.conv_id, key.conv_type)
    return _done_empty(args)


async def _cmd_conv_pin(client: Client, args: argparse.Namespace) -> int:
    key: ConvKey = args.key
    await client.conv_pin(key.conv_id, key.conv_type, True)
    return _done_empty(args)


async def _cmd_conv_unpin(client: Client, args: argparse.Namespace) -> int:
    key: ConvKey = args.key
    await client.conv_pin(key.conv_id, key.conv_type, False)
    return _done_empty(args)


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
    await done.wait()
    return EXIT_OK


# -- main --------------------------------------------------------------------------------------


def _fail(message: str) -> None:
    sys.stderr.write(f"convctl: {message}\n")


async def _run(args: argparse.Namespace) -> int:
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


def _prepare(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """Check and complete the arguments before connecting (usage errors exit 2 here)."""
    if args.user is None:
        args.user = os.environ.get(USER_ENV) or None
    if args.needs_user and not args.user:
        _usage(parser, f"{args.command} needs a user: pass --user or set {USER_ENV}")
    if args.timeout <= 0:
        _usage(parser, "--timeout must be positive")
    if args.command == "call":
        args.call_params = None
        if args.params is not None:
            try:
                args.call_params = json.loads(args.params)
            except ValueError as exc:
                _usage(parser, f"PARAMS is not valid JSON: {exc}")
            if not isinstance(args.call_params, dict):
                _usage(parser, "PARAMS must be a JSON object (params are by name)")
    if args.command == "watch" and args.count is not None and args.count < 0:
        _usage(parser, "--count must not be negative")
    try:
        if hasattr(args, "conv"):
            args.key = _conv_key(args.conv, args.conv_type)
        if hasattr(args, "text") and args.text in (None, "-"):
            args.text = _read_stdin_text()
    except UsageError as exc:
        _usage(parser, str(exc))


def main(argv: list[str] | None = None) -> int:
    """Run ``convctl`` with ``argv`` (default: the command line); return the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        _prepare(parser, args)
        status = anyio.run(_run, args, backend="asyncio")
        sys.stdout.flush()  # here, so that a closed stdout is handled below
        return status
    except DaemonUnavailable as exc:
        _fail(f"cannot reach convd at {exc.socket_path}: {exc.reason}")
        sys.stderr.write(
            "hint: start it with `convd` (or `systemctl --user start convd.socket`), or point "
            f"--socket / ${SOCKET_ENV} at its socket\n"
        )
        return EXIT_UNREACHABLE
    except ConvdError as exc:
        detail = "" if exc.data is None else f" ({json.dumps(msgspec.to_builtins(exc.data))})"
        _fail(f"error {exc.code}: {exc.message}{detail}")
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
