"""`tg.logger`: the library's `logging.Logger` ("tg_magic"), TextGrad's `textgrad.logger`.

TextGrad writes a JSON-lines file under ./logs/ on import; tg-magic writes no file: attach a
handler to this logger to keep a log (`tg.logger.addHandler(logging.FileHandler(...))`).
"""

from __future__ import annotations

import logging

logger = logging.getLogger("tg_magic")

__all__ = ["logger"]
