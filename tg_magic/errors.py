"""The exceptions of tg_magic: each message says what went wrong and how to fix it."""

from __future__ import annotations

import os
import re


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


# Shapes of credentials that may reach a text without being in our environment (a key a
# candidate found in a file, a student's pasted token): provider keys, cloud keys, private keys.
_KEY_SHAPES = re.compile(
    r"sk-ant-[A-Za-z0-9_\-]{8,}"
    r"|\bsk-(?:proj-)?[A-Za-z0-9_\-]{16,}"
    r"|\b(?:ghp|gho|ghs|github_pat|xox[abprs]|hf|tgm)_[A-Za-z0-9_]{16,}"
    r"|\bAKIA[0-9A-Z]{16}\b"
    r"|\bAIza[0-9A-Za-z_\-]{30,}"
    r"|-----BEGIN [A-Z ]*PRIVATE KEY-----[\s\S]*?(?:-----END [A-Z ]*PRIVATE KEY-----|$)"
)


def redact(text: str) -> str:
    """Remove every known secret from a text bound for a message, a log, a file or a model:
    the values of secret-named environment variables, and anything shaped like a credential."""
    for name, value in os.environ.items():
        if value and len(value) >= 8 and any(s in name for s in ("KEY", "TOKEN", "SECRET")):
            text = text.replace(value, "[redacted]")
    return _KEY_SHAPES.sub("[redacted]", text)


def valid_text(text: str) -> str:
    """`text` as valid Unicode: each lone surrogate (which no encoder, file or API accepts)
    becomes U+FFFD; everything else (NUL, right-to-left marks, emoji) is kept as is."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return text.encode("utf-16", "surrogatepass").decode("utf-16", "replace")
    return text
