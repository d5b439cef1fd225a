# Ported verbatim from zou-group/textgrad tests/test_engines.py at commit 75e912e210864b61999781778cdf756d4468120f,
# changed only in import lines (textgrad -> tg_magic).
# TextGrad's licence notice:
# MIT License
#
# Copyright (c) 2024 Zou Group
#
# Permission is hereby granted, free of charge, to any person obtaining a copy
# of this software and associated documentation files (the "Software"), to deal
# in the Software without restriction, including without limitation the rights
# to use, copy, modify, merge, publish, distribute, sublicense, and/or sell
# copies of the Software, and to permit persons to whom the Software is
# furnished to do so, subject to the following conditions:
#
# The above copyright notice and this permission notice shall be included in all
# copies or substantial portions of the Software.
#
# THE SOFTWARE IS PROVIDED "AS IS", WITHOUT WARRANTY OF ANY KIND, EXPRESS OR
# IMPLIED, INCLUDING BUT NOT LIMITED TO THE WARRANTIES OF MERCHANTABILITY,
# FITNESS FOR A PARTICULAR PURPOSE AND NONINFRINGEMENT. IN NO EVENT SHALL THE
# AUTHORS OR COPYRIGHT HOLDERS BE LIABLE FOR ANY CLAIM, DAMAGES OR OTHER
# LIABILITY, WHETHER IN AN ACTION OF CONTRACT, TORT OR OTHERWISE, ARISING FROM,
# OUT OF OR IN CONNECTION WITH THE SOFTWARE OR THE USE OR OTHER DEALINGS IN THE
# SOFTWARE.
# ruff: noqa
# mypy: ignore-errors

import pytest

from tg_magic.engine import get_engine

def test_ollama_engine():
    # Declare test constants
    OLLAMA_BASE_URL = 'http://localhost:11434/v1'
    MODEL_STRING = "test-model-string"

    # Initialise the engine
    engine = get_engine("ollama-" + MODEL_STRING)

    assert engine
    assert engine.model_string == MODEL_STRING
    assert engine.base_url == OLLAMA_BASE_URL
