"""The prompt registry: named, versioned templates with labels, rollback and A/B splits of live traffic.

```python
async with podium.Client() as client:
    await client.prompts.push("triage", "Classify this ticket: {{ ticket }}", label="production")
    await client.prompts.push("triage", "Triage the ticket below.\\n{{ ticket }}", label="staging")
    await client.prompts.rollback("triage")                         # production back where it was
    await client.prompts.split("triage", {"production": 90, "staging": 10})

@podium.flow
async def triage(ctx: podium.Context, ticket: str) -> str:
    prompt = await ctx.prompt("triage")                              # journaled: replay sees this version
    return await ctx.model("fast").generate(prompt.render(ticket=ticket))   # journals name and version
```

Versions are immutable and numbered 1, 2, 3...; pushing content that some version already holds returns that
version. A label (``production``, ``staging``, any name starting with a letter) points at one version;
every move is recorded, and ``rollback`` steps back through them. Nothing here is cached across a label
move: labels are read from the store on every resolution (one indexed row), only immutable versions are
cached in memory.

**Tenants.** ``client.prompts`` is the shared registry (the ``default`` tenant's, as before tenants);
``client.prompts.for_tenant("acme")`` is acme's: its prompts, labels and splits are its own (stored as
``acme/<name>``: prompt names hold no ``/``, so no name reaches another tenant's). Reading a name acme has no
prompt of reads the shared one, and ``ctx.prompt("triage")`` in a run of tenant acme resolves acme's
``triage``, or the shared ``triage`` when acme has none.
"""

from __future__ import annotations

import builtins
import difflib
import hashlib
import re
import time
import weakref
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from ..errors import PromptNotFoundError, UsageError
from ..policies.access import DEFAULT_TENANT, check_tenant
from ..types import JSON, Clock, RenderedPrompt
from .template import content_hash, render, variables_of

if TYPE_CHECKING:
    from ..storage.base import PromptLabelRecord, PromptMove, PromptRecord, Store

DEFAULT_LABEL = "production"
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]*$")
_LABEL = re.compile(r"^[A-Za-z][A-Za-z0-9_.\-]*$")
_CACHE_SIZE = 256


@dataclass(frozen=True, slots=True)
class Prompt:
    """One version of a registry prompt, as resolved (by label, version, pin or A/B arm).

    ``render(**variables)`` fills the template (and the system text) in Jinja2's sandbox.
    """

    name: str
    version: int
    hash: str
    template: str
    system: str | None = None
    variables: tuple[str, ...] = ()
    model: str | None = None
    """A hint: the model this prompt was written for (``ctx.model(prompt.model or "default")``)."""
    params: dict[str, Any] = field(default_factory=dict)
    """A hint: model parameters such as ``temperature`` and ``max_tokens``."""
    metadata: dict[str, Any] = field(default_factory=dict)
    label: str | None = None
    """The label it was resolved through (None when asked for by version)."""
    arm: str | None = None
    """The A/B arm of the prompt's split this run fell into (None without a split)."""
    created_at: float = 0.0

    @property
    def provenance(self) -> dict[str, Any]:
        """What model calls journal about the prompt that produced their input."""
        return {"name": self.name, "version": self.version, "label": self.label}

    @property
    def ref(self) -> str:
        """``name@version``."""
        return f"{self.name}@{self.version}"

    def render(self, **variables: Any) -> RenderedPrompt:
        """The template filled with ``variables``, as a ``str`` carrying this prompt's provenance.

        A missing variable or a sandbox violation is a ``UsageError``.
        """
        missing = [v for v in self.variables if v not in variables]
        what = f"prompt {self.ref}"
        if missing:
            raise UsageError(
                f"{what}: missing variable{'s' if len(missing) > 1 else ''} {', '.join(missing)} "
                f"(it reads {', '.join(self.variables)})"
            )
        provenance = self.provenance
        system = None
        if self.system:
            system = RenderedPrompt(render(self.system, variables, f"{what} (system)"), provenance)
        return RenderedPrompt(render(self.template, variables, what), provenance, system)

    def to_json(self) -> dict[str, JSON]:
        """The journaled form (the whole version: a replay needs no registry)."""
        return {
            "name": self.name,
            "version": self.version,
            "label": self.label,
            "arm": self.arm,
            "hash": self.hash,
            "template": self.template,
            "system": self.system,
            "variables": list(self.variables),
            "model": self.model,
            "params": self.params,
            "metadata": self.metadata,
            "created_at": self.created_at,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Prompt:
        return cls(
            name=data["name"],
            version=int(data["version"]),
            hash=data["hash"],
            template=data["template"],
            system=data.get("system"),
            variables=tuple(data.get("variables") or ()),
            model=data.get("model"),
            params=dict(data.get("params") or {}),
            metadata=dict(data.get("metadata") or {}),
            label=data.get("label"),
            arm=data.get("arm"),
            created_at=float(data.get("created_at") or 0.0),
        )

    @classmethod
    def _of(cls, r: PromptRecord, label: str | None = None, arm: str | None = None) -> Prompt:
        return cls(
            name=r.name,
            version=r.version,
            hash=r.hash,
            template=r.template,
            system=r.system,
            variables=tuple(r.variables),
            model=r.model,
            params=dict(r.params),
            metadata=dict(r.metadata),
            label=label,
            arm=arm,
            created_at=r.created_at,
        )


@dataclass(frozen=True, slots=True)
class PromptInfo:
    """A prompt in ``Prompts.list()``: its latest version, its labels and its split."""

    name: str
    latest: int
    labels: dict[str, int]
    split: dict[str, int] | None
    updated_at: float
    shared: bool = False
    """True in a tenant's list for a shared prompt it has no prompt of its own for (it reads that one)."""


@dataclass(frozen=True, slots=True)
class LabelMove:
    """One move of a label (``Prompts.history``)."""

    label: str
    from_version: int | None
    to_version: int
    rollback: bool
    at: float

    @classmethod
    def _of(cls, m: PromptMove) -> LabelMove:
        return cls(m.label, m.from_version, m.to_version, m.rollback, m.at)


def parse_ref(ref: int | str) -> tuple[int | None, str | None]:
    """A version reference: ``3``, ``"3"``, ``"v3"`` -> version 3; anything else -> a label."""
    if isinstance(ref, bool):
        raise UsageError(f"invalid prompt version {ref!r}")
    if isinstance(ref, int):
        return ref, None
    text = ref.strip()
    if text.isdigit():
        return int(text), None
    if text[:1] in ("v", "V") and text[1:].isdigit():
        return int(text[1:]), None
    return None, text


def pick_arm(arms: Mapping[str, int], name: str, run_id: str) -> str:
    """The arm of ``arms`` (percentages summing to 100) that run ``run_id`` falls into: stable for a run,
    independent across prompts."""
    digest = hashlib.sha256(f"{name}\0{run_id}".encode()).digest()
    point = int.from_bytes(digest[:8], "big") % 10_000 / 100
    total = 0.0
    chosen = ""
    for arm, pct in arms.items():
        if pct <= 0:
            continue
        chosen = arm
        total += pct
        if point < total:
            return arm
    return chosen


def _check_name(name: str) -> str:
    if not isinstance(name, str) or not _NAME.match(name):
        raise UsageError(
            f"invalid prompt name {name!r}: use letters, digits, '_', '-' and '.', "
            "starting with a letter or digit"
        )
    return name


def _check_label(label: str) -> str:
    if not isinstance(label, str) or not _LABEL.match(label):
        raise UsageError(
            f"invalid label {label!r}: start with a letter; then letters, digits, '_', '-' and '.' "
            "(numbers are versions)"
        )
    return label


_versions: weakref.WeakKeyDictionary[Any, dict[tuple[str, int], PromptRecord]] = weakref.WeakKeyDictionary()


class Prompts:
    """The prompt registry of a store. Use it as ``client.prompts``.

    Each method is one or a few indexed reads or one transaction; versions (immutable) are cached in memory,
    labels and splits never are, so a label moved by any process applies to the next resolution.
    """

    def __init__(self, store: Store, *, clock: Clock = time.time, tenant: str = DEFAULT_TENANT) -> None:
        self.store = store
        self.clock = clock
        self.tenant = check_tenant(tenant)
        """Whose prompts these are: ``default`` is the shared registry (see the module's Tenants)."""

    def for_tenant(self, tenant: str | None) -> Prompts:
        """The registry of ``tenant`` (None or ``default``: the shared one)."""
        return Prompts(self.store, clock=self.clock, tenant=tenant or DEFAULT_TENANT)

    # -- tenants: names in the store ------------------------------------------------------------
    @property
    def _shared(self) -> bool:
        return self.tenant == DEFAULT_TENANT

    def _own(self, name: str) -> str:
        """The stored name of this tenant's prompt ``name``."""
        _check_name(name)
        return name if self._shared else f"{self.tenant}/{name}"

    async def _read(self, name: str) -> str:
        """The stored name reads of ``name`` use: this tenant's prompt if it has one, else the shared one."""
        own = self._own(name)
        if self._shared or await self._exists(own):
            return own
        return name

    async def _writable(self, name: str) -> str:
        """The stored name of this tenant's own prompt ``name``, which must exist (label, rollback, split)."""
        own = self._own(name)
        if not self._shared and not await self._exists(own):
            shared = " (it reads the shared one)" if await self._exists(name) else ""
            raise PromptNotFoundError(
                f"tenant {self.tenant!r} has no prompt {name!r} of its own{shared}: push a version first"
            )
        return own

    async def owns(self, name: str) -> bool:
        """True if this registry has a prompt ``name`` of its own (a tenant's reads may fall back to the
        shared one: see ``for_tenant``)."""
        return await self._exists(self._own(name))

    async def _exists(self, stored: str) -> bool:
        cache = _versions.get(self.store) or {}
        return (stored, 1) in cache or await self.store.prompt_get(stored, 1) is not None

    def _of(self, r: PromptRecord, label: str | None = None, arm: str | None = None) -> Prompt:
        p = Prompt._of(r, label, arm)
        return p if "/" not in p.name else replace(p, name=p.name.split("/", 1)[1])

    # -- versions -----------------------------------------------------------------------------
    async def push(
        self,
        name: str,
        template: str,
        *,
        system: str | None = None,
        variables: list[str] | None = None,
        model: str | None = None,
        params: Mapping[str, Any] | None = None,
        metadata: Mapping[str, Any] | None = None,
        label: str | None = None,
    ) -> Prompt:
        """Store ``template`` as the next version of ``name`` (or return the version holding the same content)
        and optionally point ``label`` at it. ``variables`` defaults to those the template reads; declaring
        more makes them required at render time, declaring fewer is an error."""
        from ..storage.base import PromptRecord

        stored_name = self._own(name)
        if not isinstance(template, str) or not template.strip():
            raise UsageError(f"prompt {name!r}: the template is empty")
        if label is not None:
            _check_label(label)
        read = variables_of(template, system)
        if variables is None:
            declared = read
        else:
            declared = sorted(set(variables))
            undeclared = [v for v in read if v not in declared]
            if undeclared:
                raise UsageError(
                    f"prompt {name!r}: the template reads {', '.join(undeclared)}, which are not declared"
                )
        params = dict(params or {})
        record = PromptRecord(
            name=stored_name,
            version=0,
            hash=content_hash(template, system, declared, model, params),
            template=template,
            system=system,
            variables=declared,
            model=model,
            params=params,
            metadata=dict(metadata or {}),
            created_at=self.clock(),
        )
        stored, _ = await self.store.prompt_push(record)
        if label is not None:
            await self.label(name, stored.version, label)
        return self._of(stored, label)

    async def _version(self, name: str, version: int) -> PromptRecord:
        cache = _versions.get(self.store)
        if cache is None:
            cache = _versions.setdefault(self.store, {})
        found = cache.get((name, version))
        if found is None:
            found = await self.store.prompt_get(name, version)
            if found is None:
                known = await self.store.prompt_versions(name)
                shown = name.split("/", 1)[-1]
                if not known:
                    raise PromptNotFoundError(f"no prompt named {shown!r}")
                raise PromptNotFoundError(
                    f"prompt {shown!r} has no version {version} (versions 1..{known[-1].version})"
                )
            if len(cache) >= _CACHE_SIZE:
                cache.pop(next(iter(cache)))
            cache[(name, version)] = found
        return found

    async def _label(self, name: str, label: str) -> PromptLabelRecord:
        found = await self.store.prompt_label(name, label)
        if found is None:
            labels = await self.store.prompt_labels(name)
            shown = name.split("/", 1)[-1]
            if not labels and not await self.store.prompt_versions(name):
                raise PromptNotFoundError(f"no prompt named {shown!r}")
            have = ", ".join(lb.label for lb in labels) or "none"
            raise PromptNotFoundError(
                f"prompt {shown!r} has no label {label!r} (labels: {have}); "
                f"move one with `podium prompts label {shown} VERSION {label}`"
            )
        return found

    async def get(self, name: str, *, label: str | None = None, version: int | None = None) -> Prompt:
        """A version by number, or the one ``label`` (by default ``production``) points at."""
        if version is not None and label is not None:
            raise UsageError("give a label or a version, not both")
        return await self._get(await self._read(name), label=label, version=version)

    async def _get(self, stored: str, *, label: str | None, version: int | None) -> Prompt:
        if version is not None:
            return self._of(await self._version(stored, version))
        label = label or DEFAULT_LABEL
        found = await self._label(stored, label)
        return self._of(await self._version(stored, found.version), label)

    async def get_ref(self, name: str, ref: int | str) -> Prompt:
        """A version by reference: a number (``3``, ``"v3"``) or a label."""
        version, label = parse_ref(ref)
        return await self.get(name, version=version, label=label)

    async def versions(self, name: str) -> builtins.list[Prompt]:
        """Every version of ``name``, oldest first."""
        found = await self.store.prompt_versions(await self._read(name))
        if not found:
            raise PromptNotFoundError(f"no prompt named {name!r}")
        return [self._of(r) for r in found]

    async def list(self) -> list[PromptInfo]:
        """Every prompt, by name, with its latest version, labels and split. A tenant's list has its own
        prompts and the shared ones it has none of (``shared=True``)."""
        out: dict[str, PromptInfo] = {}
        prefix = f"{self.tenant}/"
        for r in await self.store.prompt_latest():
            tenant, _, name = r.name.rpartition("/")
            if tenant and r.name.startswith(prefix) and not self._shared:
                shared = False
            elif not tenant and (self._shared or name not in out):
                shared = not self._shared
            else:
                continue
            labels = {lb.label: lb.version for lb in await self.store.prompt_labels(r.name)}
            split = await self.store.prompt_split(r.name)
            out[name] = PromptInfo(name, r.version, labels, split, r.created_at, shared)
        return [out[name] for name in sorted(out)]

    # -- labels -------------------------------------------------------------------------------
    async def labels(self, name: str) -> dict[str, int]:
        """The labels of ``name`` and the versions they point at."""
        return {lb.label: lb.version for lb in await self.store.prompt_labels(await self._read(name))}

    async def label(self, name: str, version: int, label: str) -> Prompt:
        """Point ``label`` at ``version`` (new runs that resolve the label get it at once)."""
        _check_label(label)
        stored = await self._writable(name)
        record = await self._version(stored, version)
        current = await self.store.prompt_label(stored, label)
        if current is None or current.version != version:
            await self.store.prompt_move(stored, label, version, now=self.clock())
        return self._of(record, label)

    async def history(self, name: str, label: str = DEFAULT_LABEL) -> builtins.list[LabelMove]:
        """Every move of ``label``, oldest first."""
        moves = await self.store.prompt_moves(await self._read(name), label)
        return [LabelMove._of(m) for m in moves]

    async def rollback(self, name: str, label: str = DEFAULT_LABEL) -> Prompt:
        """Move ``label`` back to the version it pointed at before its latest move (again: further back).

        Applies to new runs at once; runs that resolved the prompt already keep their journaled version.
        """
        name = await self._writable(name)
        await self._label(name, label)
        previous: builtins.list[int] = []
        for m in await self.store.prompt_moves(name, label):
            if m.rollback:
                if previous:
                    previous.pop()
            elif m.from_version is not None:
                previous.append(m.from_version)
        if not previous:
            shown = name.split("/", 1)[-1]
            raise UsageError(f"prompt {shown!r}: label {label!r} has no earlier version to roll back to")
        target = previous[-1]
        await self.store.prompt_move(name, label, target, now=self.clock(), rollback=True)
        return self._of(await self._version(name, target), label)

    # -- comparing ----------------------------------------------------------------------------
    async def diff(self, name: str, a: int | str, b: int | str) -> str:
        """A unified diff of two versions (numbers or labels) of ``name``: system text, then template."""
        pa, pb = await self.get_ref(name, a), await self.get_ref(name, b)
        out: builtins.list[str] = []
        for part, x, y in (
            ("system", pa.system or "", pb.system or ""),
            ("template", pa.template, pb.template),
        ):
            out += difflib.unified_diff(
                x.splitlines(keepends=True),
                y.splitlines(keepends=True),
                fromfile=f"{pa.ref} {part}",
                tofile=f"{pb.ref} {part}",
            )
        return "".join(line if line.endswith("\n") else line + "\n" for line in out)

    # -- A/B splits ---------------------------------------------------------------------------
    async def split(self, name: str, arms: Mapping[str, int] | None) -> dict[str, int] | None:
        """Split ``name``'s live traffic over arms (labels or version numbers) by percentage; ``None``
        removes the split (runs resolve the label again).

        ```python
        await client.prompts.split("triage", {"production": 90, "candidate": 10})
        ```
        Each run falls into one arm, chosen from its id (stable across replay), journaled with the prompt.
        """
        name = await self._writable(name)
        if arms is None:
            await self.store.prompt_split_put(name, None, now=self.clock())
            return None
        if not isinstance(arms, Mapping) or len(arms) < 1:
            raise UsageError("a split needs at least one arm, e.g. {'production': 90, 'candidate': 10}")
        clean: dict[str, int] = {}
        for arm, pct in arms.items():
            if isinstance(pct, bool) or not isinstance(pct, int) or pct < 0:
                raise UsageError(f"split arm {arm!r}: the share must be a whole percentage, not {pct!r}")
            version, label = parse_ref(arm)
            if version is not None:
                await self._version(name, version)
                key = str(version)
            else:
                assert label is not None
                await self._label(name, _check_label(label))
                key = label
            if key in clean:
                raise UsageError(f"split arm {arm!r} is given twice")
            clean[key] = pct
        total = sum(clean.values())
        if total != 100:
            raise UsageError(f"a split's percentages must sum to 100, not {total}")
        await self.store.prompt_split_put(name, clean, now=self.clock())
        return clean

    async def get_split(self, name: str) -> dict[str, int] | None:
        """The split of ``name``'s traffic, or None."""
        return await self.store.prompt_split(await self._read(name))

    # -- inside a flow ------------------------------------------------------------------------
    async def resolve(
        self,
        name: str,
        *,
        run_id: str,
        label: str | None = None,
        version: int | None = None,
        pins: Mapping[str, str] | None = None,
    ) -> Prompt:
        """What ``ctx.prompt`` resolves: the run's pin ``prompt:NAME`` if any, else the version or label the
        code asks for, else the split's arm for this run, else the ``production`` label. In a tenant's
        registry: of the tenant's prompt ``name``, or of the shared one if the tenant has none."""
        if version is not None and label is not None:
            raise UsageError("give a label or a version, not both")
        stored = await self._read(name)
        pin = (pins or {}).get(f"prompt:{name}")
        if pin is not None:
            version, label = parse_ref(pin)
        elif version is None and label is None:
            arms = await self.store.prompt_split(stored)
            if arms:
                arm = pick_arm(arms, name, run_id)
                v, lb = parse_ref(arm)
                if v is not None:
                    return self._of(await self._version(stored, v), None, arm)
                assert lb is not None
                found = await self._label(stored, lb)
                return self._of(await self._version(stored, found.version), lb, arm)
        return await self._get(stored, label=label, version=version)
