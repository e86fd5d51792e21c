"""Models as journaled steps: in-code models, and the OpenAI-compatible provider against a real HTTP
server on 127.0.0.1 that scripts faults (429 with Retry-After, 500, timeouts, malformed JSON, drops)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import WAIT_SECONDS, close_within, settings_for, wait_status
from pydantic import BaseModel

import podium
from podium.config import load_config
from podium.models import Completion, ModelRequest, register
from podium.models.spec import specs_from
from podium.testing import FakeOpenAIServer


class Reply(BaseModel):
    subject: str
    urgent: bool


CALLS: list[str] = []


def echo(request: ModelRequest) -> str:
    CALLS.append(request.messages[-1].content)
    return f"echo: {request.messages[-1].content}"


register("t.echo", echo, price_input=1.0, price_output=2.0)


@pytest.fixture
def server() -> Iterator[FakeOpenAIServer]:
    with FakeOpenAIServer() as s:
        yield s


def remote(server: FakeOpenAIServer, **extra: Any) -> dict[str, Any]:
    return {
        "models": {
            "remote": {
                "provider": "openai",
                "model": "m1",
                "base_url": server.url,
                "timeout": 2,
                "max_retries": 2,
                "price": {"input": 0.5, "output": 1.5},
                **extra,
            },
            "vec": {"provider": "openai", "model": "e1", "kind": "embedding", "base_url": server.url},
        }
    }


def client_for(url: str, config: dict[str, Any] | None = None) -> podium.Client:
    return podium.Client(settings_for(url).with_(config=config or {}))


@podium.flow(name="models.ask")
async def ask(ctx: podium.Context, question: str) -> dict[str, Any]:
    answer = await ctx.model("t.echo").generate(question, system="be brief")
    await ctx.approval("look")  # the run leaves memory here; after it, everything is replayed
    return {"answer": answer}


async def test_a_model_call_is_a_journaled_step_and_never_repeated_on_replay(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/p.db"
    CALLS.clear()
    first = client_for(url)
    await first.open()
    handle = await first.start(ask, "is it on?")
    await wait_status(first, handle.id, podium.RunStatus.WAITING)
    await close_within(first)
    second = client_for(url)
    await second.open()
    try:
        await second.approve(handle.id)
        assert await second.result(handle.id, timeout=WAIT_SECONDS) == {"answer": "echo: is it on?"}
        assert CALLS == ["is it on?"]  # replayed from the journal, not called again
        step = next(e for e in await second.journal(handle.id) if e.kind == "step")
        assert step.name == "model:t.echo"
        completion = Completion.model_validate(step.data["result"])
        assert completion.text == "echo: is it on?" and completion.provider == "function"
        assert completion.usage.input_tokens > 0 and completion.usage.estimated
        expected = (completion.usage.input_tokens * 1.0 + completion.usage.output_tokens * 2.0) / 1e6
        assert completion.cost == pytest.approx(expected)
    finally:
        await close_within(second)


@podium.flow(name="models.structured")
async def structured(ctx: podium.Context, text: str) -> Reply:
    return await ctx.model("remote").generate(text, output=Reply)


async def test_structured_output_is_validated_and_repaired(store_url: str, server: FakeOpenAIServer) -> None:
    server.script('json:{"subject": "refund"}', 'json:Sure! {"subject": "refund", "urgent": true}')
    async with client_for(store_url, remote(server)) as c:
        out = await (await c.start(structured, "my card was charged twice")).result(timeout=WAIT_SECONDS)
    assert out == Reply(subject="refund", urgent=True)
    first = server.requests[0]["body"]
    assert first["response_format"]["type"] == "json_schema"
    assert first["response_format"]["json_schema"]["schema"]["required"] == ["subject", "urgent"]
    repair = server.requests[1]["body"]["messages"]
    assert repair[-1]["role"] == "user" and "not valid" in repair[-1]["content"]


async def test_structured_output_that_never_validates_is_a_clear_error(
    store_url: str, server: FakeOpenAIServer
) -> None:
    server.default = "json:not json at all"
    async with client_for(store_url, remote(server)) as c:
        with pytest.raises(podium.RunFailedError) as info:
            await (await c.start(structured, "x")).result(timeout=WAIT_SECONDS)
    assert info.value.error["type"] == "ModelOutputError"
    assert "did not produce valid output after 3 tries" in info.value.error["message"]
    assert len(server.requests) == 3


@podium.flow(name="models.plain")
async def plain(ctx: podium.Context, text: str) -> str:
    return await ctx.model("remote").generate(text)


@pytest.mark.parametrize("faults", [["429:0.05", "500"], ["malformed"], ["drop"], ["sleep:3"]])
async def test_transient_faults_are_retried(
    store_url: str, server: FakeOpenAIServer, faults: list[str]
) -> None:
    server.script(*faults, "ok:fine")
    async with client_for(store_url, remote(server)) as c:
        assert await (await c.start(plain, "hi")).result(timeout=WAIT_SECONDS) == "fine"
    assert len(server.requests) == len(faults) + 1


async def test_retry_after_is_honoured(store_url: str, server: FakeOpenAIServer) -> None:
    server.script("429:0.6", "ok:later")
    async with client_for(store_url, remote(server)) as c:
        h = await c.start(plain, "hi")
        assert await h.result(timeout=WAIT_SECONDS) == "later"
        step = next(e for e in await c.journal(h.id) if e.kind == "step")
    assert step.data["result"]["attempts"] == 2
    assert step.data["ended"] - step.data["started"] >= 0.6


async def test_persistent_faults_end_in_a_model_error(store_url: str, server: FakeOpenAIServer) -> None:
    server.default = "500"
    async with client_for(store_url, remote(server)) as c:
        with pytest.raises(podium.RunFailedError) as info:
            await (await c.start(plain, "hi")).result(timeout=WAIT_SECONDS)
    assert info.value.error["type"] == "ModelError"
    assert "after 3 attempts" in info.value.error["message"]


async def test_client_errors_are_not_retried(store_url: str, server: FakeOpenAIServer) -> None:
    server.default = "400"
    async with client_for(store_url, remote(server)) as c:
        with pytest.raises(podium.RunFailedError) as info:
            await (await c.start(plain, "hi")).result(timeout=WAIT_SECONDS)
    assert info.value.error["type"] == "HTTP400" and len(server.requests) == 1


async def test_api_key_comes_from_the_named_environment_variable(
    store_url: str, server: FakeOpenAIServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("T_MODELS_KEY", "sk-test-123")
    async with client_for(store_url, remote(server, api_key_env="T_MODELS_KEY")) as c:
        assert await (await c.start(plain, "hi")).result(timeout=WAIT_SECONDS) == "hello"
    assert server.requests[0]["authorization"] == "Bearer sk-test-123"
    monkeypatch.delenv("T_MODELS_KEY")
    async with client_for(store_url, remote(server, api_key_env="T_MODELS_KEY")) as c:
        with pytest.raises(podium.RunFailedError, match="T_MODELS_KEY is not set"):
            await (await c.start(plain, "hi")).result(timeout=WAIT_SECONDS)


@podium.flow(name="models.classify_embed")
async def classify_embed(ctx: podium.Context, text: str) -> dict[str, Any]:
    label = await ctx.model("remote").classify(text, ["refund", "bug", "question"])
    one = await ctx.embed(text, model="vec")
    many = await ctx.embed([text, "other"], model="vec")
    return {"label": label, "dim": len(one), "n": len(many)}


async def test_classify_and_embed(store_url: str, server: FakeOpenAIServer) -> None:
    server.script('json:{"label": "refund"}')
    async with client_for(store_url, remote(server)) as c:
        out = await (await c.start(classify_embed, "refund me")).result(timeout=WAIT_SECONDS)
    assert out == {"label": "refund", "dim": 8, "n": 2}
    schema = server.requests[0]["body"]["response_format"]["json_schema"]["schema"]
    assert schema["properties"]["label"]["enum"] == ["refund", "bug", "question"]


@podium.flow(name="models.stream")
async def streamed(ctx: podium.Context, text: str) -> dict[str, Any]:
    pieces: list[str] = []
    full = await ctx.model("remote").stream(text, on_token=pieces.append)
    return {"full": full, "pieces": len(pieces)}


async def test_streaming(store_url: str, server: FakeOpenAIServer) -> None:
    server.script("ok:one two three")
    async with client_for(store_url, remote(server)) as c:
        out = await (await c.start(streamed, "count")).result(timeout=WAIT_SECONDS)
    assert out == {"full": "one two three ", "pieces": 3}
    assert server.requests[0]["body"]["stream"] is True
    assert server.requests[0]["body"]["stream_options"] == {"include_usage": True}


@podium.flow(name="models.unknown")
async def unknown(ctx: podium.Context) -> str:
    return await ctx.model("nope").generate("x")


async def test_unknown_model_fails_the_run_with_a_clear_error(client: podium.Client) -> None:
    with pytest.raises(podium.RunFailedError) as info:
        await (await client.start(unknown)).result(timeout=WAIT_SECONDS)
    assert (
        info.value.error["type"] == "UnknownModelError"
        or "unknown model 'nope'" in info.value.error["message"]
    )
    assert "unknown model 'nope'" in info.value.error["message"]


@pytest.mark.parametrize(
    ("toml", "message"),
    [
        ('[models.x]\nprovider = "cohere"\nmodel = "m"\n', "provider must be one of"),
        ('[models.x]\nprovider = "openai"\nmodel = "m"\n', "needs base_url"),
        ('[models.x]\nprovider = "local"\n', "'model'"),
        ('[models.x]\nprovider = "local"\nmodel = "m"\nprice = "cheap"\n', "price must be a table"),
        ("[models.x\n", "podium.toml"),
    ],
)
def test_bad_model_configuration_is_a_clear_error(tmp_path: Path, toml: str, message: str) -> None:
    path = tmp_path / "podium.toml"
    path.write_text(toml)
    with pytest.raises(podium.ConfigError, match=message):
        specs_from(load_config(path))


def test_defaults_need_no_configuration() -> None:
    specs = specs_from({})
    assert {"default", "fast", "smart", "embed"} <= set(specs)
    assert specs["fast"].provider == "local" and specs["embed"].kind == "embedding"
    assert json.dumps(sorted(specs))


@podium.flow(name="models.fallback")
async def with_fallback(ctx: podium.Context, text: str) -> str:
    return await ctx.model("remote").generate(text)


async def test_a_failing_model_falls_back_and_the_journal_says_which_answered(
    store_url: str, server: FakeOpenAIServer
) -> None:
    server.default = "500"
    config = remote(server, max_retries=0, fallbacks=["t.echo"])
    async with client_for(store_url, config) as c:
        h = await c.start(with_fallback, "help")
        assert await h.result(timeout=WAIT_SECONDS) == "echo: help"
        step = next(e for e in await c.journal(h.id) if e.kind == "step")
    completion = Completion.model_validate(step.data["result"])
    assert completion.served_by == "t.echo" and completion.provider == "function"
    assert len(completion.failed) == 1 and completion.failed[0].startswith("remote: ")


async def test_the_circuit_breaker_stops_calling_a_failing_endpoint(server: FakeOpenAIServer) -> None:
    server.default = "500"
    config = remote(server, max_retries=0, fallbacks=["t.echo"], breaker={"failures": 2, "cooldown": 60})
    async with client_for("memory://", config) as c:
        for _ in range(2):
            assert await (await c.start(with_fallback, "a")).result(timeout=WAIT_SECONDS) == "echo: a"
        assert len(server.requests) == 2
        h = await c.start(with_fallback, "b")
        assert await h.result(timeout=WAIT_SECONDS) == "echo: b"
        step = next(e for e in await c.journal(h.id) if e.kind == "step")
    assert len(server.requests) == 2  # the open breaker answered at once, without a request
    assert "circuit open" in step.data["result"]["failed"][0]


async def test_when_every_model_fails_the_error_lists_them(store_url: str, server: FakeOpenAIServer) -> None:
    server.default = "500"
    config = remote(server, max_retries=0, fallbacks=["t.nothing"])
    register("t.nothing", lambda request: (_ for _ in ()).throw(RuntimeError("also down")))
    async with client_for(store_url, config) as c:
        with pytest.raises(podium.RunFailedError) as info:
            await (await c.start(with_fallback, "x")).result(timeout=WAIT_SECONDS)
    message = info.value.error["message"]
    assert "every model failed for 'remote'" in message and "also down" in message


@podium.flow(name="models.cached")
async def cached(ctx: podium.Context, text: str) -> dict[str, Any]:
    c = await ctx.model("remote").chat([{"role": "user", "content": text}], temperature=0)
    return {"text": c.text, "cached": c.cached, "cost": c.cost}


async def test_identical_deterministic_calls_are_answered_from_the_persistent_cache(
    tmp_path: Path, server: FakeOpenAIServer
) -> None:
    url = f"sqlite:///{tmp_path}/p.db"
    server.default = "ok:forty two"
    async with client_for(url, remote(server)) as c:
        first = await (await c.start(cached, "meaning?")).result(timeout=WAIT_SECONDS)
        second = await (await c.start(cached, "meaning?")).result(timeout=WAIT_SECONDS)
        other = await (await c.start(cached, "something else")).result(timeout=WAIT_SECONDS)
        assert c.worker is not None and (c.worker.cache.hits, c.worker.cache.misses) == (1, 2)
    async with client_for(url, remote(server)) as c:  # a new process would see the same store
        third = await (await c.start(cached, "meaning?")).result(timeout=WAIT_SECONDS)
    assert first["cached"] is False and first["cost"] > 0
    assert second == third == {"text": "forty two", "cached": True, "cost": 0.0}
    assert other["cached"] is False
    assert len(server.requests) == 2


async def test_sampling_calls_and_disabled_caches_always_reach_the_model(server: FakeOpenAIServer) -> None:
    async with client_for("memory://", remote(server)) as c:
        for _ in range(2):
            await (await c.start(plain, "same")).result(timeout=WAIT_SECONDS)  # no temperature: sampling
    assert len(server.requests) == 2
    async with client_for("memory://", remote(server, cache=False)) as c:
        for _ in range(2):
            await (await c.start(cached, "same")).result(timeout=WAIT_SECONDS)
    assert len(server.requests) == 4


@podium.flow(name="models.budgeted", budget=0.0008)
async def budgeted(ctx: podium.Context, n: int) -> dict[str, Any]:
    served = []
    for i in range(n):
        c = await ctx.model("remote").chat(
            [{"role": "user", "content": f"question {i} " * 50}], max_tokens=100
        )
        served.append(c.served_by)
    return {"served": served, "spent": round(ctx.cost, 6)}


async def test_a_run_budget_stops_calls_before_it_is_exceeded(
    store_url: str, server: FakeOpenAIServer
) -> None:
    config = remote(server)
    config["models"]["remote"]["price"] = {"input": 2.0, "output": 4.0}  # about $0.0008 per call here
    async with client_for(store_url, config) as c:
        with pytest.raises(podium.RunFailedError) as info:
            await (await c.start(budgeted, 3)).result(timeout=WAIT_SECONDS)
    assert info.value.error["type"] == "BudgetExceededError"
    assert "over its budget of $0.0008" in info.value.error["message"]
    assert len(server.requests) == 1  # the second call was refused before it was made


async def test_a_run_budget_can_downgrade_to_a_cheaper_model(
    store_url: str, server: FakeOpenAIServer
) -> None:
    register("t.free", lambda request: "free answer")
    config = remote(server, downgrade="t.free")
    config["models"]["remote"]["price"] = {"input": 2.0, "output": 4.0}
    async with client_for(store_url, config) as c:
        out = await (await c.start(budgeted, 3)).result(timeout=WAIT_SECONDS)
    assert out["served"] == ["remote", "t.free", "t.free"]
    assert 0 < out["spent"] <= 0.0008 + 1e-9


def claude(server: FakeOpenAIServer) -> dict[str, Any]:
    base = server.url.removesuffix("/v1")
    return {
        "models": {
            "remote": {
                "provider": "anthropic",
                "model": "claude-x",
                "base_url": base,
                "api_key_env": "T_ANTHROPIC_KEY",
                "max_retries": 1,
                "timeout": 2,
            }
        }
    }


async def test_anthropic_messages_api(
    store_url: str, server: FakeOpenAIServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("T_ANTHROPIC_KEY", "ak-1")
    server.script(
        "ok:hello from claude", 'json:{"subject": "refund", "urgent": false}', "429:0.05", "ok:one two"
    )
    async with client_for(store_url, claude(server)) as c:
        assert await (await c.start(plain, "hi")).result(timeout=WAIT_SECONDS) == "hello from claude"
        out = await (await c.start(structured, "refund please")).result(timeout=WAIT_SECONDS)
        assert out == Reply(subject="refund", urgent=False)
        streamed_out = await (await c.start(streamed, "count")).result(timeout=WAIT_SECONDS)
    assert streamed_out == {"full": "one two ", "pieces": 2}
    first, second = server.requests[0], server.requests[1]
    assert first["path"] == "/v1/messages" and first["body"]["max_tokens"] == 1024
    assert second["body"]["tool_choice"] == {"type": "tool", "name": "output"}
    assert second["body"]["tools"][0]["input_schema"]["required"] == ["subject", "urgent"]
    assert len(server.requests) == 4  # the 429 was retried


def echo_as(name: str) -> Any:
    def answer(request: ModelRequest) -> str:
        return name

    return answer


for _name in ("r.small", "r.big", "r.private"):
    register(_name, echo_as(_name))

ROUTED = {
    "models": {
        "cheap": {
            "provider": "function",
            "model": "podium.testing:echo_model",
            "price": {"input": 0.1, "output": 0.2},
            "capabilities": ["json"],
        },
        "pricey": {
            "provider": "function",
            "model": "podium.testing:echo_model",
            "price": {"input": 5, "output": 15},
            "capabilities": ["json", "tools"],
        },
    },
    "routers": {
        "by_rules": {
            "strategy": "rules",
            "rules": [
                {"when": {"data_class": ["confidential"]}, "model": "r.private"},
                {"when": {"max_input_tokens": 20}, "model": "r.small"},
                {"model": "r.big"},
            ],
        },
        "by_cost": {"strategy": "cheapest", "candidates": ["pricey", "cheap"], "requires": ["json"]},
        "by_cost_tools": {"strategy": "cheapest", "candidates": ["pricey", "cheap"], "requires": ["tools"]},
    },
}


@podium.flow(name="models.routed")
async def routed(ctx: podium.Context, long_text: str) -> dict[str, Any]:
    rules = ctx.model("by_rules")
    return {
        "short": await rules.generate("hi"),
        "long": await rules.generate(long_text),
        "secret": await rules.generate("hi", data_class="confidential"),
        "cheap": (await ctx.model("by_cost").chat([{"role": "user", "content": "x"}])).served_by,
        "tools": (await ctx.model("by_cost_tools").chat([{"role": "user", "content": "x"}])).served_by,
    }


async def test_routers_choose_a_model_per_call(store_url: str) -> None:
    async with client_for(store_url, ROUTED) as c:
        h = await c.start(routed, "a long question " * 40)
        out = await h.result(timeout=WAIT_SECONDS)
        steps = [e for e in await c.journal(h.id) if e.kind == "step"]
    assert out == {
        "short": "r.small",
        "long": "r.big",
        "secret": "r.private",
        "cheap": "cheap",
        "tools": "pricey",
    }
    assert [s.name for s in steps][:3] == ["model:by_rules"] * 3  # the journal keeps the name the code used
    assert [s.data["result"]["served_by"] for s in steps][:3] == ["r.small", "r.big", "r.private"]


@podium.flow(name="models.topic")
async def topic(ctx: podium.Context, text: str) -> str:
    return (await ctx.model("by_topic").chat([{"role": "user", "content": text}])).served_by


async def test_a_classifier_router_picks_the_nearest_route(server: FakeOpenAIServer) -> None:
    config = remote(server)
    config["routers"] = {
        "by_topic": {
            "strategy": "classifier",
            "embed": "vec",
            "routes": {"r.small": "aaaa aaaa aaaa", "r.big": "zzzz yyyy zzzz"},
        }
    }
    async with client_for("memory://", config) as c:
        assert await (await c.start(topic, "aaa aa a")).result(timeout=WAIT_SECONDS) == "r.small"
        assert await (await c.start(topic, "zz yy zz")).result(timeout=WAIT_SECONDS) == "r.big"


@pytest.mark.parametrize(
    ("routers", "message"),
    [
        ({"x": {"strategy": "random"}}, "strategy must be rules, cheapest or classifier"),
        (
            {"x": {"strategy": "rules", "rules": [{"when": {"colour": "red"}, "model": "fast"}]}},
            "unknown conditions",
        ),
        ({"x": {"strategy": "cheapest"}}, "candidates must be a non-empty list"),
        ({"x": {"strategy": "classifier", "routes": {"fast": "a"}}}, "at least two"),
    ],
)
def test_bad_router_configuration_is_a_clear_error(routers: dict[str, Any], message: str) -> None:
    from podium.models.router import routers_from

    with pytest.raises(podium.ConfigError, match=message):
        routers_from({"routers": routers})


async def test_the_semantic_cache_answers_similar_requests(tmp_path: Path, server: FakeOpenAIServer) -> None:
    url = f"sqlite:///{tmp_path}/p.db"
    server.default = "ok:it is sunny"
    config = remote(server, semantic_cache={"threshold": 0.9, "embed": "vec"})
    async with client_for(url, config) as c:
        first = await (await c.start(cached, "weather in paris today")).result(timeout=WAIT_SECONDS)
        similar = await (await c.start(cached, "weather in paris today?")).result(timeout=WAIT_SECONDS)
        different = await (await c.start(cached, "zzz qqq xxx")).result(timeout=WAIT_SECONDS)
        assert c.worker is not None and c.worker.cache.semantic.hits == 1
    chats = [r for r in server.requests if r["path"].endswith("/chat/completions")]
    assert len(chats) == 2  # the similar question was answered from the semantic cache
    assert first["cached"] is False and similar == {"text": "it is sunny", "cached": True, "cost": 0.0}
    assert different["cached"] is False


async def test_usage_and_cost_per_run_and_per_flow(store_url: str, server: FakeOpenAIServer) -> None:
    async with client_for(store_url, remote(server)) as c:
        h1 = await c.start(plain, "one two three")
        h2 = await c.start(plain, "four")
        await h1.result(timeout=WAIT_SECONDS)
        await h2.result(timeout=WAIT_SECONDS)
        u1 = await c.usage(h1.id)
        totals = await c.usage_by_flow(flow="models.plain")
    assert (u1.calls, u1.input_tokens, u1.output_tokens) == (1, 3, 1)  # counts reported by the server
    assert u1.cost == pytest.approx((3 * 0.5 + 1 * 1.5) / 1e6)
    flow_total = totals["models.plain"]
    assert flow_total.calls == 2 and flow_total.input_tokens == 4


@podium.flow(name="models.spam")
async def spam(ctx: podium.Context, texts: list[str]) -> list[str]:
    return [await ctx.model("t.spam").classify(t, ["spam", "ham"]) for t in texts]


async def test_a_fitted_scikit_learn_estimator_is_a_model(store_url: str) -> None:
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline

    train = [
        "win money now",
        "free prize click",
        "cheap pills offer",
        "lunch at noon?",
        "meeting moved to 3",
        "see you tomorrow",
        "claim your free money",
        "notes from the meeting",
    ]
    labels = ["spam", "spam", "spam", "ham", "ham", "ham", "spam", "ham"]
    register("t.spam", make_pipeline(TfidfVectorizer(), LogisticRegression()).fit(train, labels))
    async with client_for(store_url) as c:
        h = await c.start(spam, ["free money prize", "the meeting is at noon"])
        assert await h.result(timeout=WAIT_SECONDS) == ["spam", "ham"]
        steps = [e for e in await c.journal(h.id) if e.kind == "step"]
    assert [s.name for s in steps] == ["model:t.spam", "model:t.spam"]
    assert json.loads(steps[0].data["result"]["text"]) == {"label": "spam"}


@podium.flow(name="models.tools")
async def with_tools(ctx: podium.Context, text: str) -> dict[str, Any]:
    weather = {
        "type": "function",
        "function": {
            "name": "weather",
            "description": "Weather for a city",
            "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
        },
    }
    turn = await ctx.model("remote").chat([{"role": "user", "content": text}], tools=[weather])
    call = turn.tool_calls[0]
    answer = await ctx.model("remote").chat(
        [
            {"role": "user", "content": text},
            {"role": "assistant", "content": "", "tool_calls": [call.model_dump()]},
            {"role": "tool", "content": "sunny, 21°C", "tool_call_id": call.id},
        ]
    )
    return {"tool": call.name, "args": call.arguments, "answer": answer.text}


async def test_tool_calls_round_trip(store_url: str, server: FakeOpenAIServer) -> None:
    server.script('tool:weather:{"city": "Paris"}', "ok:It is sunny in Paris.")
    async with client_for(store_url, remote(server)) as c:
        out = await (await c.start(with_tools, "weather in Paris?")).result(timeout=WAIT_SECONDS)
    assert out == {"tool": "weather", "args": {"city": "Paris"}, "answer": "It is sunny in Paris."}
    sent_tools = server.requests[0]["body"]["tools"]
    assert sent_tools[0]["function"]["name"] == "weather"
    follow_up = server.requests[1]["body"]["messages"]
    assert follow_up[1]["tool_calls"][0]["function"]["name"] == "weather"
    assert follow_up[2] == {"role": "tool", "content": "sunny, 21°C", "tool_call_id": "call_1"}


@podium.flow(name="models.daily", daily_budget=0.0007)
async def daily(ctx: podium.Context, text: str) -> str:
    c = await ctx.model("remote").chat([{"role": "user", "content": text * 50}], max_tokens=100)
    return c.text


async def test_a_daily_budget_per_flow_holds_across_runs(tmp_path: Path, server: FakeOpenAIServer) -> None:
    url = f"sqlite:///{tmp_path}/p.db"
    config = remote(server)
    config["models"]["remote"]["price"] = {"input": 2.0, "output": 4.0}  # estimated $0.0006, costs $0.0001
    async with client_for(url, config) as c:
        assert await (await c.start(daily, "question ")).result(timeout=WAIT_SECONDS) == "hello"
    async with client_for(url, config) as c:  # another process, the same day, the same flow
        with pytest.raises(podium.RunFailedError) as info:
            await (await c.start(daily, "question ")).result(timeout=WAIT_SECONDS)
    assert info.value.error["type"] == "BudgetExceededError"
    assert "daily budget of $0.0007" in info.value.error["message"]
    assert len(server.requests) == 1
