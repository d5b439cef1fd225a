"""The exceptions of tg_magic: each message says what went wrong and how to fix it."""

from __future__ import annotations


class TgMagicError(Exception):
    """Base class: a one-line, user-facing message that names the fix."""


class InputError(TgMagicError, ValueError):
    """A value, argument or graph that cannot be used as given."""


class EngineError(TgMagicError):
    """An engine could not be created or a model call failed."""


class MissingAPIKey(EngineError):
    """A provider's API key is not set."""


class UnusableReply(EngineError):
    """The provider answered, but with nothing usable (an HTML page, broken JSON, no text):
    retried like a transient error."""


class BudgetExceeded(TgMagicError):
    """The next call would exceed the budget; everything computed so far is kept."""


def redact(text: str) -> str:
    """Remove every known secret from a text bound for a message, a log or a file."""
    import os

    for name, value in os.environ.items():
        if value and len(value) >= 8 and any(s in name for s in ("KEY", "TOKEN", "SECRET")):
            text = text.replace(value, "[redacted]")
    return text


def valid_text(text: str) -> str:
    """`text` as valid Unicode: each lone surrogate (which no encoder, file or API accepts)
    becomes U+FFFD; everything else (NUL, right-to-left marks, emoji) is kept as is."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return text.encode("utf-16", "surrogatepass").decode("utf-16", "replace")
    return text
