"""The one owner of tg_magic's settings, and the one reader of its environment variables.

`tg.configure(engine=..., concurrency=...)` changes a setting for the process; `with
tg.context(engine=...):` changes it for a block (the current thread, and the model calls it
starts). A setting nobody configured falls back to its `TG_MAGIC_*` environment variable, read
when the setting is read, then to its default. The magics' traitlets, `%tgconfig` and the
command line all write here, so a plain `loss.backward()` in a cell and `%tgoptimize` use the
same engines.

In a kernel that `tg-magic run` started, `allow_unsandboxed` belongs to the person who ran it
(its --allow-unsandboxed flag, passed as TG_MAGIC_RUN_UNSANDBOXED and read from the environment
the kernel started with): a cell can turn unsandboxed runs off, never on.
"""

from __future__ import annotations

import contextvars
import os
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from .errors import InputError

if TYPE_CHECKING:
    from .engines import Engine


def _text(raw: str) -> str | None:
    return raw.strip() or None


def _flag(raw: str) -> bool:
    return raw.strip().lower() in ("1", "true", "yes", "on")


def _number(kind: Callable[[str], Any]) -> Callable[[str], Any]:
    def parse(raw: str) -> Any:
        return kind(raw) if raw.strip() else None

    return parse


# name: (default, environment variable, how to read it, what it is)
FIELDS: dict[str, tuple[Any, str | None, Callable[[str], Any], str]] = {
    "engine": (None, "TG_MAGIC_ENGINE", _text, "forward engine spec (None: the default rule)"),
    "backward_engine": (
        None,
        "TG_MAGIC_BACKWARD_ENGINE",
        _text,
        "engine for gradients and steps (None: the forward engine)",
    ),
    "concurrency": (
        16,
        "TG_MAGIC_CONCURRENCY",
        _number(int),
        "model calls in flight at once to start with (a provider's pace grows it)",
    ),
    "max_concurrency": (
        256,
        "TG_MAGIC_MAX_CONCURRENCY",
        _number(int),
        "the most model calls in flight at once as a provider's pace grows",
    ),
    "cache": (None, "TG_MAGIC_CACHE", str, "reply cache file, or 'off' (None: the user cache)"),
    "request_timeout": (
        None,
        "TG_MAGIC_REQUEST_TIMEOUT",
        _number(float),
        "seconds one model request may take before it is retried (None: the provider's "
        "default, 120 s for Claude)",
    ),
    "idle_timeout": (
        None,
        "TG_MAGIC_IDLE_TIMEOUT",
        _number(float),
        "seconds a streamed reply may send nothing before it is retried (None: 30 s)",
    ),
    "run_deadline": (
        None,
        "TG_MAGIC_RUN_DEADLINE",
        _number(float),
        "seconds one blocking call (forward, backward, a step) may take (None: no deadline)",
    ),
    "feedback_only": (
        False,
        "TG_MAGIC_FEEDBACK_ONLY",
        _flag,
        "hints only, no steps (an honour-system convenience for self-study)",
    ),
    "allow_unsandboxed": (
        False,
        "TG_MAGIC_ALLOW_UNSANDBOXED",
        _flag,
        "run code under test without the sandbox where bubblewrap is missing",
    ),
    "notebook": (None, "TG_MAGIC_NOTEBOOK", _text, "the .ipynb the magics write into"),
    "hint_url": (None, "TG_MAGIC_HINT_URL", _text, "the class's hint service"),
    "hint_token": (None, "TG_MAGIC_HINT_TOKEN", _text, "this student's token for it"),
    "batch": (
        False,
        "TG_MAGIC_BATCH",
        _flag,
        "send Claude's calls as Message Batches: half the price, answers in minutes",
    ),
    "batch_record": (
        None,
        "TG_MAGIC_BATCH_RECORD",
        _text,
        "the file naming the batches sent, so a rerun reads them instead of paying again",
    ),
}

# `tg-magic run` starts its kernel with this set to 0 or 1: whether the person running it allowed
# unsandboxed runs. Unset everywhere else (Jupyter, a script), where the settings apply as usual.
RUN_UNSANDBOXED_ENV = "TG_MAGIC_RUN_UNSANDBOXED"


def _at_start(name: str) -> str | None:
    """`name` in the environment this process started with: on Linux /proc/self/environ, which
    no later change of os.environ touches; elsewhere os.environ when this module is imported
    (`tg-magic run` has its kernel import it before the first cell)."""
    try:
        with open("/proc/self/environ", "rb") as handle:
            entries = handle.read().split(b"\0")
    except OSError:
        return os.environ.get(name)
    key = name.encode() + b"="
    found = [e[len(key) :] for e in entries if e.startswith(key)]
    return found[-1].decode(errors="replace") if found else None


_run = _at_start(RUN_UNSANDBOXED_ENV)
RUN_UNSANDBOXED: bool | None = None if _run is None else _flag(_run)

_UNSET = object()
_overrides: contextvars.ContextVar[dict[str, Any] | None] = contextvars.ContextVar(
    "tg_magic_settings", default=None
)


class Settings:
    """Read: a `context` override, else the configured value, else the environment, else the
    default. Assigning an attribute is `configure` for that one setting."""

    def __init__(self) -> None:
        object.__setattr__(self, "_values", {})

    def __getattr__(self, name: str) -> Any:
        if name not in FIELDS:
            raise AttributeError(f"tg_magic has no setting {name!r} (settings: {_names()})")
        scoped = _overrides.get()
        if name == "allow_unsandboxed" and RUN_UNSANDBOXED is not None:
            # a kernel `tg-magic run` started: its person decides, a cell can only narrow it
            return RUN_UNSANDBOXED and bool((scoped or {}).get(name, self._values.get(name, True)))
        if scoped and name in scoped:
            return scoped[name]
        value = self._values.get(name, _UNSET)
        if value is not _UNSET:
            return value
        default, env, parse, _ = FIELDS[name]
        raw = os.environ.get(env) if env else None
        if raw is not None:
            try:
                return parse(raw)
            except ValueError:
                raise InputError(f"{env}={raw!r} cannot be read: {FIELDS[name][3]}") from None
        return default

    def __setattr__(self, name: str, value: Any) -> None:
        configure(**{name: value})

    def is_set(self, name: str) -> bool:
        """Whether a setting was configured or is in the environment (not its default)."""
        scoped = _overrides.get() or {}
        env = FIELDS[name][1]
        return name in scoped or name in self._values or bool(env and env in os.environ)

    def as_dict(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in FIELDS}


settings = Settings()


def _names() -> str:
    return ", ".join(FIELDS)


def refused(name: str, value: Any) -> str:
    """Why a notebook may not make this change ('' when it may): in a kernel `tg-magic run`
    started without --allow-unsandboxed, unsandboxed runs stay off."""
    if name == "allow_unsandboxed" and value and RUN_UNSANDBOXED is False:
        return (
            "unsandboxed runs refused: this notebook runs under `tg-magic run`, where only the "
            "person running it allows them (tg-magic run --allow-unsandboxed)"
        )
    return ""


def _check(changes: dict[str, Any], caller: int = 3) -> dict[str, Any]:
    for name, value in list(changes.items()):
        if why := refused(name, value):  # not made: the notebook is told, and goes on
            warnings.warn(why, stacklevel=caller)  # shown at the notebook's line
            changes = {k: v for k, v in changes.items() if k != name}
            continue
        if name not in FIELDS:
            raise InputError(f"unknown setting {name!r}: use one of {_names()}")
        if name in ("concurrency", "max_concurrency") and value is not None and int(value) < 1:
            raise InputError(f"{name} must be at least 1")
        timeouts = ("request_timeout", "idle_timeout", "run_deadline")
        if name in timeouts and value is not None and value <= 0:
            raise InputError(f"{name} must be a positive number of seconds, or None")
    return changes


def configure(**changes: Any) -> None:
    """Change settings for the whole process: `tg.configure(engine="anthropic:...")`."""
    values = settings._values
    for name, value in _check(changes).items():
        values[name] = value
        if name == "cache":
            from .engines.cache import reset_cache

            reset_cache()


def reset() -> None:
    """Forget every configured setting (the environment and the defaults apply again), and
    what the providers' paces learned (their limits, their concurrency)."""
    settings._values.clear()
    from .engines.cache import reset_cache
    from .engines.pacing import forget

    reset_cache()
    forget()


@contextmanager
def context(**changes: Any) -> Iterator[None]:
    """Change settings for a block: `with tg.context(engine="local"): ...`."""
    if "cache" in changes:
        raise InputError("the cache is process-wide: change it with tg.configure(cache=...)")
    merged = {**(_overrides.get() or {}), **_check(changes, caller=4)}
    token = _overrides.set(merged)
    try:
        yield
    finally:
        _overrides.reset(token)


def set_backward_engine(engine: Engine | str | None, override: bool = True, **options: Any) -> None:
    """The engine for gradients and optimizer steps (the paper: a strong model here).

    override=False refuses to replace an engine already set, as TextGrad does; `options` are
    get_engine's (TextGrad's cache=...)."""
    current = settings.backward_engine
    if current is not None and not override:
        raise InputError(
            f"a backward engine is already set ({getattr(current, 'spec', current)}): "
            "pass override=True to replace it"
        )
    if engine is not None:
        from .engines import get_engine

        engine = get_engine(engine, **options)  # a wrong spec fails here, with the fix
    configure(backward_engine=engine)


def get_backward_engine() -> Engine:
    """The backward engine setting, else the forward engine setting, else the default."""
    from .engines import get_engine

    return get_engine(settings.backward_engine or settings.engine)


class SingletonBackwardEngine:
    """TextGrad's holder of the backward engine: a view of `settings.backward_engine`."""

    def get_engine(self) -> Engine | None:
        from .engines import get_engine

        chosen = settings.backward_engine
        return None if chosen is None else get_engine(chosen)

    def set_engine(self, engine: Engine | str, override: bool = False) -> None:
        set_backward_engine(engine, override=override)
