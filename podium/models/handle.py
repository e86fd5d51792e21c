"""``ctx.model(name)``: model calls as journaled steps.

Each call is one step named ``model:<name>`` whose journaled result is the ``Completion`` (text, tool calls,
tokens, cost, latency). On replay the completion comes from the journal, so a crashed run never pays for
the same call twice and always sees the same answer.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, TypeVar, overload

from pydantic import BaseModel, TypeAdapter, ValidationError

from ..errors import UsageError
from ..policies import enforce as _policies
from ..policies.taint import Untrusted, fence
from ..types import RenderedPrompt
from .breaker import breaker_for
from .errors import BudgetExceededError, ModelError, ModelOutputError
from .limits import limiter_for
from .router import no_route
from .spec import ModelSpec
from .types import Completion, Embedding, Message, ModelRequest, Usage, estimate_tokens

if TYPE_CHECKING:
    from ..workflow.context import Context
    from .cache import ResponseCache
    from .registry import Models

T = TypeVar("T")

REPAIRS = 2
"""How often a structured answer that does not validate is sent back to the model for repair."""


def _labelled(m: dict[str, Any]) -> dict[str, Any]:
    """A message dict whose untrusted content is fenced (and never in the system role)."""
    if isinstance(m.get("content"), Untrusted):
        role = "user" if m.get("role") == "system" else m.get("role")
        return {**m, "role": role, "content": fence(m["content"])}
    return m


def _messages(prompt: str | Sequence[Message | dict[str, Any]], system: str | None) -> list[Message]:
    if isinstance(prompt, str):
        msgs = [Message(role="user", content=fence(prompt) if isinstance(prompt, Untrusted) else prompt)]
    else:
        msgs = [m if isinstance(m, Message) else Message.model_validate(_labelled(m)) for m in prompt]
    if system:
        if isinstance(system, Untrusted):  # untrusted text never becomes system instructions
            msgs.insert(0, Message(role="user", content=fence(system)))
        else:
            msgs.insert(0, Message(role="system", content=system))
    if not msgs:
        raise UsageError("a model call needs a prompt or at least one message")
    return msgs


def _provenance(*texts: Any) -> dict[str, Any] | None:
    """The provenance of the first text rendered from a registry prompt (``RenderedPrompt``), if any."""
    for text in texts:
        if isinstance(text, RenderedPrompt):
            return dict(text.provenance)
        if isinstance(text, Message):
            if isinstance(text.content, RenderedPrompt):
                return dict(text.content.provenance)
        elif isinstance(text, Mapping) and isinstance(text.get("content"), RenderedPrompt):
            return dict(text["content"].provenance)
        elif isinstance(text, Sequence) and not isinstance(text, str):
            found = _provenance(*text)
            if found is not None:
                return found
    return None


def _schema(output: Any) -> tuple[TypeAdapter[Any], dict[str, Any]]:
    adapter = TypeAdapter(output)
    return adapter, adapter.json_schema()


def _extract_json(text: str) -> str:
    """The JSON object in a model's answer (models like to wrap it in prose or code fences)."""
    start, end = text.find("{"), text.rfind("}")
    if start != -1 and end > start:
        return text[start : end + 1]
    return text


class ModelHandle:
    """A named model inside a flow. Get it with ``ctx.model("fast")``."""

    def __init__(self, ctx: Context, models: Models, name: str, cache: ResponseCache | None = None) -> None:
        self._ctx = ctx
        self._models = models
        self._cache = cache
        self.name = name
        self.router = models.router(name)
        # A router's first model stands for it where a spec is needed before the call (its kind).
        self.spec = models.spec(self.router.models()[0] if self.router is not None else name)

    def _chat_only(self, what: str) -> None:
        if self.spec.kind != "chat":
            raise UsageError(
                f"model {self.name!r} is an embedding model: it can classify and embed, not {what} "
                f"(use ctx.embed(texts, model={self.name!r}) for vectors)"
            )

    async def _choose(self, request: ModelRequest, facts: dict[str, Any]) -> ModelSpec:
        """The model for this call: this one, or the one its router picks."""
        router, models = self.router, self._models
        if router is None:
            return self.spec
        driver = self._ctx._driver
        facts = {**facts, "budget_left": None if driver.budget is None else driver.budget - driver.spent}
        if router.strategy == "rules":
            for rule in router.rules:
                if rule.matches(facts):
                    return models.spec(rule.model)
            raise no_route(router, facts)
        if router.strategy == "cheapest":
            able = [
                s for s in map(models.spec, router.candidates) if set(router.requires) <= set(s.capabilities)
            ]
            if not able:
                raise UsageError(f"router {router.name!r}: no candidate has {list(router.requires)}")
            return min(able, key=lambda s: (s.price_input + s.price_output, router.candidates.index(s.name)))
        embed_spec = models.spec(router.embed)
        provider = models.provider(embed_spec)
        text = next((m.content for m in reversed(request.messages) if m.role == "user"), "")
        vectors = await _label_vectors(provider, embed_spec, dict(router.routes))
        query = (await provider.embed(embed_spec, [text], query=True)).vectors[0]
        best = max(vectors, key=lambda k: sum(a * b for a, b in zip(vectors[k], query, strict=False)))
        return models.spec(best)

    async def _within_budget(self, spec: ModelSpec, input_tokens: int, max_tokens: int | None) -> ModelSpec:
        """The model to call under the run's budget and the flow's daily budget: ``spec``, its
        ``downgrade`` model, or an error (raised inside the call's step, before any request, so the
        journal says why)."""
        driver = self._ctx._driver
        budget, spent, daily = driver.budget, driver.spent, driver.daily_budget
        if budget is None and daily is None:
            return spec
        today = await driver.spent_today() if daily is not None else 0.0
        seen: set[str] = set()
        while True:
            estimate = spec.cost(input_tokens, max_tokens or 256)
            over = None
            if budget is not None and spent + estimate > budget:
                over = f"the run over its budget of ${budget:g}: spent ${spent:.4f}"
            elif daily is not None and today + estimate > daily:
                over = f"the flow over its daily budget of ${daily:g}: spent ${today:.4f} today"
            if over is None:
                return spec
            cheaper = spec.extra.get("downgrade")
            if not isinstance(cheaper, str) or cheaper in seen:
                raise BudgetExceededError(
                    f"model {spec.name!r} would take {over}, this call about ${estimate:.4f}"
                )
            seen.add(cheaper)
            spec = self._models.spec(cheaper)

    async def _complete(
        self,
        request: ModelRequest,
        adapter: TypeAdapter[Any] | None,
        post: Callable[[Completion], Completion] | None = None,
        *,
        task: str | None = None,
        data_class: str | None = None,
        prompt: dict[str, Any] | None = None,
        hops: int = 0,
    ) -> Completion:
        models = self._models
        tokens = sum(estimate_tokens(m.content) for m in request.messages) + (request.max_tokens or 0)
        facts: dict[str, Any] = {
            "task": task,
            "data_class": data_class,
            "input_tokens": tokens - (request.max_tokens or 0),
        }

        # A run that holds a data subject's data neither reads nor writes the shared cache: nothing of the
        # subject's outlives an erasure there, and no other person's answer is served to it.
        cache = None if getattr(self._ctx, "subject", None) else self._cache

        async def attempt(spec: ModelSpec) -> Completion:
            if cache is None or not cache.applies(spec, request):
                return await fresh(spec)
            key = cache.key(spec, request)
            hit = await cache.get(key)
            if hit is not None:
                return hit
            semantic, vector = cache.semantic, None
            similar = semantic.settings(spec)
            if similar is not None:
                embed_spec = models.spec(similar[1])
                vector = (
                    await models.provider(embed_spec).embed(embed_spec, [semantic.text(request)], query=True)
                ).vectors[0]
                hit = await semantic.get(spec, vector, similar[0])
                if hit is not None:
                    return hit
            completion = await fresh(spec)
            await cache.put(key, completion)
            if vector is not None:
                await semantic.put(spec, request, vector, completion)
            return completion

        async def fresh(spec: ModelSpec) -> Completion:
            provider = models.provider(spec)
            limiter = limiter_for(spec)
            if limiter is not None:
                prepare = getattr(provider, "prepare", None)
                if prepare is not None:
                    prepare(spec)  # set-up first, so the slot the limiter grants is spent on sending
                await limiter.acquire(tokens)
            completion: Completion = await provider.complete(spec, request)
            if post is not None:  # inside the step: what is journaled is final, whatever the config
                completion = post(completion)
            if adapter is None:
                return completion
            attempts, messages, total = 0, list(request.messages), completion
            while True:
                try:
                    adapter.validate_json(_extract_json(completion.text))
                    completion.text = _extract_json(completion.text)
                    break
                except ValidationError as exc:
                    attempts += 1
                    if attempts > REPAIRS:
                        raise ModelOutputError(
                            f"model {spec.name!r} did not produce valid output after {attempts} tries: "
                            f"{exc.errors()[0]['msg']}",
                            retryable=False,
                        ) from None
                    messages += [
                        Message(role="assistant", content=completion.text),
                        Message(
                            role="user",
                            content=f"That is not valid: {exc.errors()[0]['msg']}. "
                            "Answer again with only the JSON object.",
                        ),
                    ]
                    completion = await provider.complete(
                        spec, request.model_copy(update={"messages": messages})
                    )
                    total.usage.input_tokens += completion.usage.input_tokens
                    total.usage.output_tokens += completion.usage.output_tokens
            completion.usage = total.usage
            completion.cost = spec.cost(total.usage.input_tokens, total.usage.output_tokens)
            completion.attempts = attempts + 1
            return completion

        async def call() -> Completion:
            chosen = await self._choose(request, facts)
            first = await self._within_budget(chosen, facts["input_tokens"], request.max_tokens)
            chain = [first, *(models.spec(name) for name in first.fallbacks)]
            failed: list[str] = []
            last: ModelError | None = None
            for spec in chain:
                breaker = breaker_for(spec)
                if not breaker.allow():
                    failed.append(f"{spec.name}: circuit open (too many recent failures)")
                    continue
                try:
                    completion = await attempt(spec)
                except ModelError as exc:
                    if not isinstance(exc, ModelOutputError) and not exc.type.startswith("HTTP4"):
                        breaker.failure()  # only infrastructure failures count against the endpoint
                    failed.append(f"{spec.name}: {exc.message}")
                    last = exc
                    continue
                breaker.success()
                completion.served_by = spec.name
                completion.failed = failed
                completion.prompt = prompt
                return completion
            if len(chain) == 1 and last is not None:
                raise last
            raise ModelError(
                f"every model failed for {self.name!r}: " + "; ".join(failed),
                type=last.type if last is not None else "ModelError",
                retryable=last.retryable if last is not None else True,
            )

        # -- policies (podium.policies): untrusted text out of the system role, then model.before --
        ctx = self._ctx
        request, tainted = _policies.shield(request)
        if tainted:
            ctx._untrusted = True
        pfacts = _policies.model_facts(ctx, self.name, self.spec, request, task=task, data_class=data_class)
        request, masked, switch = await _policies.before_model(ctx, pfacts, request)
        if switch is not None and switch != self.name:
            if hops >= 3:
                raise UsageError(f"policies switch models in a loop (at {self.name!r} -> {switch!r})")
            other = ModelHandle(ctx, models, switch, self._cache)
            return await other._complete(
                request, adapter, post, task=task, data_class=data_class, prompt=prompt, hops=hops + 1
            )

        async def charged() -> Completion:
            completion = await call()
            await _policies.charge(ctx, completion)  # the run pin `tenant`'s spending today
            return completion

        result: Completion = await ctx.step(f"model:{self.name}", charged)
        return await _policies.after_model(ctx, pfacts, result, masked)

    @overload
    async def generate(
        self,
        prompt: str | Sequence[Message | dict[str, Any]],
        *,
        system: str | None = ...,
        output: None = ...,
        temperature: float | None = ...,
        max_tokens: int | None = ...,
        task: str | None = ...,
        data_class: str | None = ...,
    ) -> str: ...
    @overload
    async def generate(
        self,
        prompt: str | Sequence[Message | dict[str, Any]],
        *,
        system: str | None = ...,
        output: type[T],
        temperature: float | None = ...,
        max_tokens: int | None = ...,
        task: str | None = ...,
        data_class: str | None = ...,
    ) -> T: ...

    async def generate(
        self,
        prompt: str | Sequence[Message | dict[str, Any]],
        *,
        system: str | None = None,
        output: Any = None,
        temperature: float | None = None,
        max_tokens: int | None = None,
        task: str | None = None,
        data_class: str | None = None,
    ) -> Any:
        """The model's answer to ``prompt`` (a string or messages): text, or with ``output=Model`` a
        validated instance (the model is asked for JSON matching the schema and repaired if it misses)."""
        self._chat_only("generate text")
        adapter, schema = _schema(output) if output is not None else (None, None)
        request = ModelRequest(
            messages=_messages(prompt, system),
            temperature=temperature,
            max_tokens=max_tokens,
            json_schema=schema,
        )
        completion = await self._complete(
            request, adapter, task=task, data_class=data_class, prompt=_provenance(prompt, system)
        )
        if adapter is None:
            return completion.text
        return adapter.validate_json(completion.text)

    async def chat(
        self,
        messages: Sequence[Message | dict[str, Any]],
        *,
        tools: Sequence[dict[str, Any]] = (),
        temperature: float | None = None,
        max_tokens: int | None = None,
        task: str | None = None,
        data_class: str | None = None,
    ) -> Completion:
        """One chat turn; the full ``Completion`` (text, tool calls, usage, cost)."""
        self._chat_only("chat")
        request = ModelRequest(
            messages=_messages(messages, None),
            tools=list(tools),
            temperature=temperature,
            max_tokens=max_tokens,
        )
        return await self._complete(
            request, None, task=task, data_class=data_class, prompt=_provenance(messages)
        )

    async def classify(
        self, text: str, labels: Sequence[str] | Mapping[str, str], *, instructions: str | None = None
    ) -> str:
        """The one label that fits ``text`` best. ``labels`` is a list, or a dict of label -> description.

        A chat model answers with JSON constrained to the labels; an embedding model picks the label whose
        description is nearest to the text (cosine similarity, multilingual with the embedded e5), which
        small local models do far more reliably; an estimator's ``predict`` answers directly.
        """
        options = [str(label) for label in labels]
        if len(options) < 2 or len(set(options)) != len(options):
            raise UsageError("classify needs at least two distinct labels")
        if self.spec.kind == "embedding":
            described = dict(labels) if isinstance(labels, Mapping) else {o: o for o in options}
            return await self._nearest(text, {str(k): str(v) for k, v in described.items()})
        if self.spec.provider == "function":  # an estimator answers with the label itself

            def as_label(c: Completion) -> Completion:
                c.text = json.dumps({"label": self._pick(c.text, options)})
                return c

            completion = await self._complete(
                ModelRequest(messages=_messages(text, None)), None, as_label, prompt=_provenance(text)
            )
            return str(json.loads(completion.text)["label"])
        schema = {
            "type": "object",
            "properties": {"label": {"type": "string", "enum": options}},
            "required": ["label"],
        }
        system = (
            (instructions or "Classify the user's text.")
            + ' Answer with JSON: {"label": one of '
            + json.dumps(options)
            + "}."
        )
        request = ModelRequest(
            messages=_messages(text, system), temperature=0.0, max_tokens=32, json_schema=schema
        )
        completion = await self._complete(
            request, _label_adapter(options), task="classify", prompt=_provenance(text, instructions)
        )
        return str(json.loads(completion.text)["label"])

    async def _nearest(self, text: str, described: dict[str, str]) -> str:
        spec, models = self.spec, self._models

        async def call() -> Completion:
            started = time.perf_counter()
            provider = models.provider(spec)
            labels = await _label_vectors(provider, spec, described)
            query = (await provider.embed(spec, [text], query=True)).vectors[0]
            scores = {k: sum(a * b for a, b in zip(v, query, strict=False)) for k, v in labels.items()}
            best = max(scores, key=lambda k: scores[k])
            tokens = estimate_tokens(text)
            return Completion(
                model=spec.model,
                provider=spec.provider,
                text=json.dumps({"label": best, "scores": scores}),
                usage=Usage(input_tokens=tokens, estimated=True),
                cost=spec.cost(tokens, 0),
                latency=time.perf_counter() - started,
                served_by=spec.name,
            )

        completion: Completion = await self._ctx.step(f"model:{self.name}", call)
        return str(json.loads(completion.text)["label"])

    def _pick(self, answer: str, options: list[str]) -> str:
        low = answer.strip().lower()
        for label in options:
            if low == label.lower():
                return label
        for label in options:
            if label.lower() in low:
                return label
        raise ModelOutputError(
            f"model {self.name!r} answered {answer!r}, not one of {options}", retryable=False
        )

    async def stream(
        self,
        prompt: str | Sequence[Message | dict[str, Any]],
        *,
        on_token: Callable[[str], Any] | None = None,
        system: str | None = None,
        temperature: float | None = None,
        max_tokens: int | None = None,
        retries: int | Any = None,
    ) -> str:
        """Generate text, calling ``on_token`` with each piece as it arrives; returns (and journals) the
        whole text. On replay the text comes from the journal and ``on_token`` is not called.

        The pieces are also published to the run's token stream (``client.tokens(run_id)``, or
        ``GET /api/runs/{id}/tokens`` as server-sent events a client can resume with ``Last-Event-ID``); a
        retried or taken-over step streams again after a reset event. ``retries``: the step's retry policy.
        """
        self._chat_only("stream text")
        spec, models = self.spec, self._models
        request = ModelRequest(
            messages=_messages(prompt, system), temperature=temperature, max_tokens=max_tokens
        )
        # policies, as for every model call; the tokens streamed out of a redacted call hold placeholders
        ctx = self._ctx
        request, tainted = _policies.shield(request)
        if tainted:
            ctx._untrusted = True
        pfacts = _policies.model_facts(ctx, self.name, spec, request, task=None, data_class=None)
        request, masked, switch = await _policies.before_model(ctx, pfacts, request)
        if switch is not None:
            spec = models.spec(switch)

        async def call() -> Completion:
            import time

            started = time.perf_counter()
            parts: list[str] = []
            reported: Usage | None = None
            live = self._ctx.token_stream()
            try:
                async for piece in models.provider(spec).stream(spec, request):
                    if isinstance(piece, Usage):  # the server's own count, after the text
                        reported = piece
                        continue
                    parts.append(piece)
                    if live is not None:
                        await live.write(piece)
                    if on_token is not None:
                        out = on_token(piece)
                        if hasattr(out, "__await__"):
                            await out
            finally:
                if live is not None:
                    await live.close()
            text = "".join(parts)
            u = reported or Usage(
                input_tokens=sum(estimate_tokens(m.content) for m in request.messages),
                output_tokens=estimate_tokens(text),
                estimated=True,
            )
            return Completion(
                model=spec.model,
                provider=spec.provider,
                text=text,
                usage=u,
                cost=spec.cost(u.input_tokens, u.output_tokens),
                latency=time.perf_counter() - started,
            )

        async def charged() -> Completion:
            done = await call()
            await _policies.charge(ctx, done)
            return done

        completion: Completion = await ctx.step(f"model:{self.name}", charged, retries=retries)
        return (await _policies.after_model(ctx, pfacts, completion, masked)).text


def _label_adapter(labels: list[str]) -> TypeAdapter[Any]:
    """Validates ``{"label": <one of the labels>}``."""
    from typing import Literal

    class Label(BaseModel):
        label: Literal[tuple(labels)]  # type: ignore[valid-type]

    return TypeAdapter(Label)


async def embed(ctx: Context, models: Models, texts: str | Sequence[str], *, model: str, query: bool) -> Any:
    """``ctx.embed``: one journaled step; a vector for a string, a list of vectors for a list."""
    single = isinstance(texts, str)
    items = [texts] if isinstance(texts, str) else [str(t) for t in texts]
    if not items:
        return []
    spec = models.spec(model)
    if spec.kind != "embedding":
        raise UsageError(f'model {model!r} is a chat model; configure kind = "embedding" to embed with it')

    limiter = limiter_for(spec)
    items = await _policies.before_embed(ctx, spec, items)  # egress to an external embedding model

    async def call() -> Embedding:
        if limiter is not None:
            await limiter.acquire(sum(estimate_tokens(t) for t in items))
        result: Embedding = await models.provider(spec).embed(spec, items, query=query)
        return result

    result: Embedding = await ctx.step(f"embed:{model}", call)
    return result.vectors[0] if single else result.vectors


_LABEL_VECTORS: dict[tuple[str, str, str, str], list[float]] = {}


async def _label_vectors(provider: Any, spec: ModelSpec, described: dict[str, str]) -> dict[str, list[float]]:
    """Embeddings of label descriptions, computed once per process."""
    key = (spec.provider, spec.base_url or "", spec.model)
    missing = [k for k, d in described.items() if (*key, d) not in _LABEL_VECTORS]
    if missing:
        result = await provider.embed(spec, [described[k] for k in missing], query=False)
        for k, vector in zip(missing, result.vectors, strict=True):
            _LABEL_VECTORS[(*key, described[k])] = vector
    return {k: _LABEL_VECTORS[(*key, d)] for k, d in described.items()}
