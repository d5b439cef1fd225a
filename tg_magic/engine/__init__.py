"""TextGrad's `textgrad.engine` names for tg-magic's engines (tg_magic.engines).

EngineLM    -> tg_magic.Engine (the same class: subclass it and override `generate`)
get_engine  -> tg_magic.get_engine (also takes TextGrad's names: gpt-4o, claude-...,
               ollama-MODEL, experimental:PROVIDER/MODEL; engine_name= and cache=)
"""

from __future__ import annotations

from ..engines import Engine, get_engine

EngineLM = Engine

__all__ = ["EngineLM", "get_engine"]
