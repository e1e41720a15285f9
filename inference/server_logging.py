"""The server's log: one handler on stderr, tokens redacted from every line, refusals logged once.

Tokens: browsers cannot set headers on a WebSocket, so the page sends its token as `?token=` on
/v1/stream, and uvicorn logs every handshake with its query string. Redaction works on the decoded
parameter name (`tok%65n`, `%74oken` and `TOKEN` are all read as a token by someone), on the whole
formatted line (tracebacks included), for our loggers and uvicorn's alike. The HTTP routes accept
the token only in headers.

Refused WebSocket handshakes: uvicorn logs two lines for each (the status and websockets'
"connection rejected"); `log_refusal` writes one line with the reason instead, at INFO: a
refusal is a client's mistake, not the server's, and anyone can cause as many as they like.
"""

from __future__ import annotations

import logging
import re
import sys
from urllib.parse import unquote_plus

log = logging.getLogger("stylecast.server")

# key=value pairs of a query string inside a log line (after "?", "&" or ";").
_QUERY_PAIR = re.compile(r"(?P<lead>[?&;])(?P<key>[^=&;?\s\"'#]+)=(?P<value>[^&;\s\"'#]*)")


def _secret_name(key: str) -> bool:
    name = unquote_plus(key).lower()
    return "token" in name or "secret" in name or "password" in name


def redact_secrets(text: str) -> str:
    """`?tok%65n=abc&x=1` -> `?tok%65n=***&x=1`: values of parameters whose decoded name says token."""
    if "=" not in text:
        return text
    return _QUERY_PAIR.sub(lambda m: f"{m['lead']}{m['key']}=***" if _secret_name(m["key"]) else m[0], text)


class RedactingFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        return redact_secrets(super().format(record))


class QuietHandshakeRefusals(logging.Filter):
    """Drops uvicorn's and websockets' lines for a refused handshake: `log_refusal` wrote one."""

    def filter(self, record: logging.LogRecord) -> bool:
        msg = record.msg if isinstance(record.msg, str) else ""
        return not (msg == '%s - "WebSocket %s" %d' or msg.startswith("connection rejected ("))


def log_refusal(scope, status: int, error: str, detail: str) -> None:
    client = scope.get("client")
    where = f"{client[0]}:{client[1]}" if client else "?"
    log.info("WebSocket %s refused: %d %s (%s) from %s", scope.get("path", "")[:200], status, error, detail, where)


def setup_logging(level: str, access_log: bool) -> None:
    """Root handler on stderr (uvicorn's loggers propagate to it); the JSON access lines on their own
    handler, without a prefix."""
    root = logging.getLogger()
    root.setLevel(getattr(logging, level.upper()))
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(RedactingFormatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    handler.addFilter(QuietHandshakeRefusals())
    root.handlers[:] = [handler]
    access = logging.getLogger("stylecast.access")
    access.propagate = False
    access.handlers.clear()
    if access_log:
        line = logging.StreamHandler(sys.stderr)
        line.setFormatter(RedactingFormatter("%(message)s"))  # the message is one JSON object
        access.addHandler(line)
        access.setLevel(logging.INFO)
    else:
        access.setLevel(logging.CRITICAL + 1)
