"""tg-magic's side of TextGrad compatibility: the aliases are tg-magic's own objects, and the
behaviours TextGrad programs rely on hold (engines, backward engine, instance optimization,
images, tasks)."""

from __future__ import annotations

import asyncio
import base64
import json
import subprocess
import sys
import threading
from pathlib import Path

import pytest

import tg_magic as tg
from tests.fake_api import FakeMessagesAPI
from tg_magic import config, engines, functions, loss, optim
from tg_magic.engines.base import Engine

ANT = Path(__file__).resolve().parents[1] / "data" / "ant.jpg"


def test_aliases_are_tg_magics_own_objects() -> None:
    import tg_magic.autograd as autograd
    import tg_magic.engine as engine
    import tg_magic.engine.base as engine_base
    import tg_magic.optimizer as optimizer
    from tg_magic.autograd.ops import MultimodalLLMCall
    from tg_magic.engines.names import ChatAnthropic, ChatOpenAI, LiteLLMEngine

    same = [
        (tg.EngineLM, Engine),
        (engine.EngineLM, Engine),
        (engine_base.EngineLM, Engine),
        (engine.get_engine, engines.get_engine),
        (tg.get_engine, engines.get_engine),
        (tg.TextualGradientDescent, optim.TGD),
        (optimizer.TextualGradientDescent, optim.TGD),
        (optimizer.TGD, optim.TGD),
        (autograd.LLMCall, functions.LLMCall),
        (autograd.FormattedLLMCall, functions.FormattedLLMCall),
        (autograd.StringBasedFunction, functions.StringBasedFunction),
        (autograd.sum, functions.sum),
        (autograd.aggregate, functions.sum),
        (tg.aggregate, functions.sum),
        (tg.sum, functions.sum),
        (autograd.MultimodalLLMCall, MultimodalLLMCall),
        (tg.config.SingletonBackwardEngine, config.SingletonBackwardEngine),
        (tg.set_backward_engine, config.set_backward_engine),
        (tg.TextLoss, loss.TextLoss),
        (tg.loss.ImageQALoss, loss.ImageQALoss),
    ]
    for alias, own in same:
        assert alias is own, alias
    # Constructor adapters: subclasses of tg-magic's engines that add only __init__.
    from tg_magic.engines.anthropic import AnthropicEngine
    from tg_magic.engines.openai import OpenAIEngine

    for cls, base in ((ChatOpenAI, OpenAIEngine), (ChatAnthropic, AnthropicEngine)):
        assert issubclass(cls, base) and set(vars(cls)) - {"__doc__", "__module__"} == {"__init__"}
    assert set(vars(LiteLLMEngine)) - {"__doc__", "__module__"} == {"__init__", "_complete"}
    assert isinstance(tg.logger, __import__("logging").Logger)


class Fixed(tg.EngineLM):
    def __init__(self, reply: str) -> None:
        self.reply = reply
        self.calls = 0

    def generate(self, prompt, system_prompt=None, **kwargs):  # type: ignore[no-untyped-def]
        self.calls += 1
        return self.reply


class Other(Fixed):
    def generate(self, prompt, system_prompt=None, **kwargs):  # type: ignore[no-untyped-def]
        return "other: " + super().generate(prompt, system_prompt)


def test_custom_engines_have_their_own_cache_entries_and_usage() -> None:
    a, b = Fixed("from A"), Other("from B")
    x = tg.Variable("hello", role_description="greeting")
    assert tg.BlackboxLLM(a)(x).value == "from A"
    assert tg.BlackboxLLM(b)(x).value == "other: from B"  # not A's cached reply
    with tg.track_usage() as run:
        assert tg.BlackboxLLM(a)(x).value == "from A"
    assert a.calls == 1 and run.usage.cached_calls == 1  # the shared cache, keyed by class


def test_async_generate_runs_concurrently_in_the_graph() -> None:
    inside, peak, lock = [0], [0], threading.Lock()
    release = asyncio.Event()

    class Slow(tg.EngineLM):
        async def generate(self, prompt, system_prompt=None, **kwargs):  # type: ignore[no-untyped-def]
            with lock:
                inside[0] += 1
                peak[0] = max(peak[0], inside[0])
                if inside[0] == 4:
                    release.set()
            await asyncio.wait_for(release.wait(), 10)  # all four in flight, or time out
            with lock:
                inside[0] -= 1
            return f"answer to {prompt}"

    model = tg.BlackboxLLM(Slow())
    outputs = [model(tg.Variable(f"q{i}", role_description="question")) for i in range(4)]
    total = tg.sum(outputs)
    assert total.value.splitlines() == [f"answer to q{i}" for i in range(4)]
    assert peak[0] == 4


def test_losses_and_models_without_engine_use_the_backward_engine() -> None:
    judge = Fixed("judged")
    tg.set_backward_engine(judge, override=True)
    assert tg.TextLoss("Judge it.").engine is judge
    assert tg.BlackboxLLM().engine is judge
    with pytest.raises(tg.InputError, match="already set"):
        tg.set_backward_engine(Fixed("x"), override=False)
    assert tg.config.SingletonBackwardEngine().get_engine() is judge


def test_a_models_output_is_optimized_and_gradients_follow_the_graph(
    fake: FakeMessagesAPI,
) -> None:
    tg.set_backward_engine("claude-haiku-5-5", override=True)
    model = tg.BlackboxLLM("claude-haiku-5-5")
    question = tg.Variable("What is 2+2?", role_description="question", requires_grad=False)
    answer = model(question)
    judges = [tg.TextLoss(f"Judge {i}.") for i in range(3)]
    losses = [j(answer) for j in judges]  # built before the optimizer takes the answer
    optimizer = tg.TGD(parameters=[answer])
    tg.sum(losses).backward()
    order = [g.context["output"] for g in answer.gradients]
    assert order == [l_.value for l_ in losses]  # the graph's order, whatever finished first
    answer.gradients.add(tg.Variable("be brief", role_description="feedback"))
    assert answer.get_gradient_text().endswith("be brief")
    before = answer.value
    optimizer.step()
    assert answer.value != before and answer.past_values == [before]


def test_images_go_to_claude_as_image_blocks(
    fake: FakeMessagesAPI, textgrad_world: list[str]
) -> None:
    image = tg.Variable(image_path=str(ANT), role_description="photo", requires_grad=False)
    assert image.value == ANT.read_bytes() and textgrad_world == []  # a file is not fetched
    question = tg.Variable("What is this?", role_description="question", requires_grad=False)
    response = tg.autograd.MultimodalLLMCall("claude-haiku-5-5")([image, question])
    evaluation = tg.loss.ImageQALoss("Is it right?", engine="claude-haiku-5-5")(
        image=image, question=question, response=response
    )
    tg.set_backward_engine("claude-haiku-5-5", override=True)
    tg.TGD([response])
    evaluation.backward()
    blocks = [
        b
        for r in fake.requests
        for m in r["body"]["messages"]
        if isinstance(m["content"], list)
        for b in m["content"]
        if b["type"] == "image"
    ]
    assert len(blocks) == 3  # the answer, the evaluation, the gradient for the answer
    for block in blocks:
        assert block["source"]["media_type"] == "image/jpeg"
        assert base64.b64decode(block["source"]["data"]) == ANT.read_bytes()
    assert response.gradients


def test_bad_images_and_engines_get_one_line() -> None:
    with pytest.raises(tg.InputError, match="not a PNG, JPEG"):
        tg.Variable(b"not an image", role_description="x", requires_grad=False)
    with pytest.raises(tg.InputError, match="images take no gradients"):
        tg.Variable(ANT.read_bytes(), role_description="photo")
    image = tg.Variable(ANT.read_bytes(), role_description="photo", requires_grad=False)
    with pytest.raises(tg.InputError, match="MultimodalLLMCall"):
        tg.BlackboxLLM(Fixed("x"))(image)
    for name, message in (
        ("groq-llama3", "Groq is not supported"),
        ("experimental:gemini/gemini-pro", "provider 'gemini' is not supported"),
    ):
        with pytest.raises(tg.InputError, match=message):
            tg.get_engine(name)


def test_engine_names_resolve_to_tg_magics_engines() -> None:
    from tg_magic.engines.anthropic import AnthropicEngine
    from tg_magic.engines.openai import OpenAIEngine

    assert isinstance(tg.get_engine("gpt-4o"), OpenAIEngine)
    assert isinstance(tg.get_engine("o3-mini"), OpenAIEngine)
    assert tg.get_engine(engine_name="claude-3-5-sonnet-20240620").spec == (
        "anthropic:claude-3-5-sonnet-20240620"
    )
    assert isinstance(tg.get_engine("experimental:anthropic/claude-x").inner, AnthropicEngine)
    assert tg.get_engine("experimental:openai/gpt-4o").inner.model == "gpt-4o"


def test_cache_option_is_honoured(fake: FakeMessagesAPI) -> None:
    own: dict[str, str] = {}
    cached = tg.get_engine("experimental:anthropic/claude-x", cache=own)
    uncached = tg.get_engine("experimental:anthropic/claude-x", cache=False)
    for engine in (cached, cached, uncached, uncached):
        engine.generate("What is 2+2?")
    assert fake.calls == 3 and len(own) == 1


def test_load_task_without_data_says_where_to_put_it(tmp_path: Path) -> None:
    with pytest.raises(
        tg.InputError, match=r"save https://raw.githubusercontent.com/.*word_sorting"
    ):
        tg.tasks.BigBenchHard("word_sorting", root=str(tmp_path))
    with pytest.raises(tg.InputError, match="not available in tg-magic"):
        tg.tasks.load_task("GSM8K_DSPy", None)
    train, val, test, _ = tg.tasks.load_task("BBH_object_counting", None)
    assert (len(train), len(val), len(test)) == (12, 6, 10)  # the fixture's files, nothing more


# -- What differs from TextGrad, on purpose (the README's list) --------------------------------


def test_outputs_need_gradients_only_when_passed_to_an_optimizer(fake: FakeMessagesAPI) -> None:
    question = tg.Variable("What is 2+2?", role_description="question", requires_grad=False)
    answer = tg.BlackboxLLM("claude-haiku-5-5")(question)
    assert answer.requires_grad is False  # nothing upstream needs a gradient
    tg.TGD(parameters=[answer])
    assert answer.requires_grad is True  # the optimizer marked it
    fixed = tg.Variable("Be brief.", role_description="fixed instruction", requires_grad=False)
    with pytest.raises(tg.InputError, match="fixed instruction has requires_grad=False"):
        tg.TGD(parameters=[fixed])  # refused at once, not silently never changed


def test_set_backward_engine_replaces_by_default(fake: FakeMessagesAPI) -> None:
    tg.set_backward_engine("claude-haiku-5-5")
    tg.set_backward_engine("claude-3-5-sonnet-20240620")  # a re-run cell: no error
    assert tg.get_backward_engine().spec == "anthropic:claude-3-5-sonnet-20240620"


def test_with_no_engine_set_the_default_engine_answers(fake: FakeMessagesAPI) -> None:
    question = tg.Variable("What is 2+2?", role_description="question", requires_grad=False)
    answer = tg.BlackboxLLM()(question)  # TextGrad raises here: no engine was set
    assert answer.value
    assert fake.requests[-1]["body"]["model"] == "claude-haiku-5-5"


def test_no_default_system_prompt_is_sent(fake: FakeMessagesAPI) -> None:
    tg.get_engine("claude-3-5-sonnet-20240620").generate("What is 2+2?")
    question = tg.Variable("What is 3+3?", role_description="question", requires_grad=False)
    tg.BlackboxLLM("claude-haiku-5-5")(question).value  # noqa: B018 - runs the call
    assert [r["body"]["messages"][0]["content"] for r in fake.requests] == [
        "What is 2+2?",
        "What is 3+3?",
    ]
    assert ["system" in r["body"] for r in fake.requests] == [False, False]


def test_importing_writes_no_log_files(tmp_path: Path) -> None:
    work = tmp_path / "work"
    work.mkdir()
    code = "import tg_magic as tg; print(len(tg.logger.handlers))"
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=work, capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == "0"
    assert list(work.iterdir()) == []  # TextGrad writes ./logs/*.jsonl here


def test_sum_passes_each_items_feedback_on_unchanged(fake: FakeMessagesAPI) -> None:
    first = tg.Variable("Paris is in Spain.", role_description="first claim")
    second = tg.Variable("Rome is in Italy.", role_description="second claim")
    total = tg.sum([first, second])
    tg.TextLoss("Check both claims.", engine="claude-haiku-5-5")(total).backward("claude-haiku-5-5")
    feedback = [g.value for g in total.gradients]
    assert feedback
    assert [g.value for g in first.gradients] == feedback
    assert [g.value for g in second.gradients] == feedback


@pytest.mark.parametrize(
    "name",
    [
        "gemini-1.5-pro",
        "together-llama-3",
        "command-r",
        "groq-llama3",
        "azure-gpt-4",
        "bedrock-claude",
        "experimental:gemini/gemini-pro",
        "experimental:together_ai/llama-3",
        "experimental:cohere/command-r",
        "experimental:groq/llama3",
        "experimental:azure/gpt-4",
        "experimental:bedrock/claude",
    ],
)
def test_providers_without_an_engine_are_refused_in_one_line(name: str) -> None:
    with pytest.raises(tg.InputError, match="is not supported by tg-magic") as refused:
        tg.get_engine(name)
    assert len(str(refused.value).splitlines()) == 1


def test_tgd_takes_the_engine_as_its_second_positional_argument(fake: FakeMessagesAPI) -> None:
    draft = tg.Variable("A short draft.", role_description="draft")
    draft.gradients.append(tg.Variable("Make it longer.", role_description="feedback"))
    tg.TGD([draft], "claude-3-5-sonnet-20240620").step()  # TextGrad's: verbose
    assert [r["body"]["model"] for r in fake.requests] == ["claude-3-5-sonnet-20240620"]


def test_what_is_not_provided_is_absent() -> None:
    import importlib

    modules = ["tg_magic", "tg_magic.autograd", "tg_magic.loss", "tg_magic.engine"]
    for name in (
        "LLMCall_with_in_context_examples",
        "MultiFieldTokenParsedEvaluation",
        "MultiChoiceTestTime",
        "CachedEngine",
    ):
        assert not any(hasattr(importlib.import_module(m), name) for m in modules), name
    draft = tg.Variable("x", role_description="draft")
    for option in ("new_variable_tags", "optimizer_system_prompt", "gradient_memory"):
        with pytest.raises(TypeError, match=option):
            tg.TGD([draft], **{option: None})


def test_load_task_reads_big_bench_hards_own_file_under_root(tmp_path: Path) -> None:
    examples = [{"input": f"I have {i} cats.", "target": i} for i in range(250)]
    (tmp_path / "object_counting.json").write_text(json.dumps({"examples": examples}))
    train, val, test, _ = tg.tasks.load_task("BBH_object_counting", None, root=str(tmp_path))
    assert (len(train), len(val), len(test)) == (50, 100, 100)  # TextGrad's split
    assert val[0] == ("I have 50 cats.", "50")
    with pytest.raises(tg.InputError, match="BBH_object_counting is not on this machine") as e:
        tg.tasks.load_task("BBH_object_counting", None, root=str(tmp_path / "empty"))
    assert str(tmp_path / "empty" / "object_counting.json") in str(e.value)
    assert len(str(e.value).splitlines()) == 1
    with pytest.raises(tg.InputError, match="unknown task 'my_task'"):
        tg.tasks.load_task("my_task", None)
