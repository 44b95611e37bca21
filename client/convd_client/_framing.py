"""NDJSON framing for the client: the wire's LineReader, with the client's own line bound."""

from __future__ import annotations

from convd_schemas.framing import LineReader, LineTooLong, send_queued

__all__ = ["DEFAULT_MAX_LINE", "LineReader", "LineTooLong", "send_queued"]

#: Longest response line the client accepts by default. Responses are not bounded by the
#: daemon's request limit (a page of conversations with large drafts can be big), so this is
#: a guard against a runaway peer rather than a protocol limit.
DEFAULT_MAX_LINE = 64 * 1024 * 1024
