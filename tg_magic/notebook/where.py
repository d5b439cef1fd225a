"""Which frontend runs this kernel, from what the kernel can see, and what that means for an
accepted value reaching its cell.

A frontend that has the notebook open holds its file: the kernel never writes that file (the
next save would meet "File Changed" and one side's edits would be lost). Where the tg-magic
extension answers, it edits the cell; elsewhere a frontend that runs IPython's payloads takes the
new text when the variable's cell next runs (`set_next_input(..., replace=True)`).
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Frontend:
    """What runs this kernel, as far as the kernel can tell."""

    name: str  # as messages call it: "JupyterLab", "VS Code", "a terminal IPython", ...
    holds_file: bool  # it has the .ipynb open: never write the file behind it
    runs_payloads: bool  # it applies set_next_input(replace=True) to the cell that runs
    answers_comms: bool = False  # a Jupyter server's page: the tg-magic extension may answer


def current(shell: Any, namespace: dict[str, Any], app: str | None = None) -> Frontend:
    """The frontend now (VS Code sets its variable after the kernel starts, so ask each time);
    `app`: the name the tg-magic extension gave, when it answered."""
    kernel = getattr(shell, "kernel", None) is not None
    vs_code = Frontend("VS Code", holds_file=True, runs_payloads=True)
    if "__vsc_ipynb_file__" in namespace:
        return vs_code
    if os.environ.get("JPY_SESSION_NAME"):  # a Jupyter server (started from VS Code's terminal too)
        name = app or "this Jupyter frontend"
        return Frontend(name, holds_file=True, runs_payloads=True, answers_comms=kernel)
    if kernel and any(k.startswith("VSCODE_") for k in os.environ):
        return vs_code
    if "google.colab" in sys.modules or os.environ.get("COLAB_RELEASE_TAG"):
        return Frontend("Colab", holds_file=True, runs_payloads=True)
    if kernel:  # nbclient, papermill, `tg-magic run`: no payloads, no answers, the file is free
        return Frontend("a headless run", holds_file=False, runs_payloads=False)
    return Frontend("a terminal IPython", holds_file=False, runs_payloads=False)


def no_notebook_setting(frontend: Frontend) -> str:
    """Why `%tgconfig --notebook` is refused under a frontend that holds the file."""
    return (
        f"--notebook: {frontend.name} has this notebook open, and a file written behind it "
        "loses your edits or the accepted text at the next save; accept as usual: the cell "
        "takes the new text through the frontend"
    )
