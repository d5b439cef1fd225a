"""The notebook face: magics, session, history, widgets. `%load_ext tg_magic` lands here."""

from __future__ import annotations

from typing import Any


def load_ipython_extension(ipython: Any) -> None:
    from .magics import TgMagics

    magics = TgMagics(shell=ipython)
    ipython.register_magics(magics)
    if magics not in ipython.configurables:
        ipython.configurables.append(magics)
    ipython.user_ns.setdefault("tg", __import__("tg_magic"))


def unload_ipython_extension(ipython: Any) -> None:
    from .live import live_transform
    from .magics import TgMagics

    if live_transform in ipython.input_transformers_post:
        ipython.input_transformers_post.remove(live_transform)

    for magics in [m for m in ipython.configurables if isinstance(m, TgMagics)]:
        ipython.events.unregister("pre_run_cell", magics._pre_run_cell)
        magics.stop_listening()
        ipython.configurables.remove(magics)
    ipython.magics_manager.registry.pop("TgMagics", None)
    for kind in ("line", "cell"):
        table = ipython.magics_manager.magics[kind]
        for name in [n for n in table if n.startswith("tg")]:
            del table[name]
