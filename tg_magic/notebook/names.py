"""Names of variables and losses: Python identifiers, since they are bound in the namespace."""

from __future__ import annotations

from ..errors import InputError


def check_name(name: str) -> None:
    if not name or not name.isidentifier():
        raise InputError(f"{name!r} is not a valid name: use a Python identifier like my_prompt")
