"""Benchmark of governance (issue 10): personal data detection, policies and the audit chain.

    python bench/governance.py            # everything
    python bench/governance.py --docs 5000

Prints, each beside its target:
* PII detection per kind on a labelled corpus made with Faker in seven locales (a seed the detectors were
  not tuned on): precision and recall with exact spans.
* PII scan throughput on one core: plain prose, and text as dense with personal data and look-alike
  numbers as the labelled corpus (a value every ~60 characters).
* Policy evaluation with 20 YAML rules spread over the hook points (target: median under 50 us per point),
  and with the example policies of ``examples/policies`` (a PII scan of a 600-character prompt included).
* ``podium audit verify`` over 1,000,000 entries in a SQLite file (target: under 10 s), and the cost of
  appending an entry.
* The authorization check (``podium.policies.access.authorize``) with 20 ``[[permissions]]`` rules, for a
  tenant principal: median per check (target: under 20 us).

    python bench/governance.py --only authz      # just one part (pii, policies, audit or authz)
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from podium.policies.pii import scan
from podium.testing.pii_corpus import corpus, score


def _mb_per_s(fn: Callable[[], object], size: int, repeat: int = 5) -> float:
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return size / statistics.median(times) / 1e6


def pii(docs: int) -> None:
    labelled = corpus(docs, seed=2026)
    report = score(labelled, lambda text: [(f.kind, f.start, f.end) for f in scan(text)])
    print(f"PII detection, {docs} documents in 7 locales (target: recall >= 0.98, precision >= 0.95)")
    print(f"  {'kind':8} {'values':>7} {'precision':>10} {'recall':>8}")
    for kind, s in report.items():
        n = s.true_positives + s.false_negatives
        print(f"  {kind:8} {n:7d} {s.precision:10.3f} {s.recall:8.3f}")
    from faker import Faker

    fake = Faker("en_US")
    fake.seed_instance(3)
    prose = " ".join(fake.paragraph(nb_sentences=8) for _ in range(4000))
    dense = "\n".join(text for text, _ in labelled)
    print("PII scan throughput, one core (target: at least 5 MB/s)")
    for name, text in (("prose", prose), ("dense", dense)):
        rate = _mb_per_s(lambda t=text: scan(t), len(text.encode()))
        print(f"  {name:6} {len(text.encode()) / 1e6:5.2f} MB  {rate:6.2f} MB/s")


_TWENTY = """policy: twenty
rules:
""" + "".join(
    f"""  - name: r{i}
    at: {point}
    when:
      {fact}: {matcher}
      untrusted: false
    then: {then}
"""
    for i, (point, fact, matcher, then) in enumerate(
        [
            ("tool.before", "arguments.amount", "{gt: 500}", "require_approval"),
            ("tool.before", "arguments.currency", "{in: [BTC, XMR]}", "deny"),
            ("tool.before", "side_effects", "{eq: maybe}", "deny"),
            ("tool.before", "tenant", "{matches: '^test-'}", "deny"),
            ("model.before", "data_class", "{in: [secret, restricted]}", "deny"),
            ("model.before", "projected_run_cost", "{gt: 2}", "deny"),
            ("model.before", "task", "{eq: translate-legal}", "require_approval"),
            ("model.before", "provider", "{eq: anthropic}", "deny"),
            ("egress", "data_class", "{ne: public}", "redact"),
            ("egress", "destination", "{contains: evil}", "deny"),
            ("model.after", "flow", "{eq: nightly}", "deny"),
            ("model.after", "task", "{eq: moderation}", "deny"),
            ("model.after", "tenant", "{in: [acme, globex]}", "redact"),
            ("run.start", "flow", "{in: [admin.wipe, admin.reset]}", "deny"),
            ("run.start", "by", "{matches: '^guest'}", "deny"),
            ("run.start", "tenant", "{exists: false}", "deny"),
            ("approval", "by", "{eq: nobody}", "deny"),
            ("approval", "approval", "{contains: wire}", "deny"),
            ("approval", "comment", "{matches: '(?i)lgtm'}", "deny"),
            ("approval", "edited", "{eq: 3}", "deny"),
        ]
    )
)


def policies(repeat: int = 20_000) -> None:
    from podium.policies import Facts, PolicySet, load, parse
    from podium.policies.enforce import _pii_kinds

    def facts_at(point: str) -> Facts:
        base: dict[str, object] = {"flow": "support", "tenant": "acme", "untrusted": True, "by": "ann"}
        if point == "tool.before":
            base.update(tool="refund", arguments={"order_id": "A1", "amount": 120.0}, side_effects=True)
        elif point in ("model.before", "model.after"):
            base.update(model="vendor", provider="openai", data_class="public", task=None, run_cost=0.1)
            base.update(projected_run_cost=0.11, destination="model:vendor", external=True)
        elif point == "approval":
            base.update(approval="tool:refund", approved=True, comment="ok", edited=False)
        return Facts(base)

    points = {
        "run.start": ("run.start",),
        "model.before": ("model.before", "egress"),
        "model.after": ("model.after",),
        "tool.before": ("tool.before",),
        "approval": ("approval",),
    }

    def measure(ps: PolicySet, make: Callable[[str], Facts]) -> dict[str, float]:
        out = {}
        for name, pts in points.items():
            times = []
            for _ in range(repeat):
                t0 = time.perf_counter()
                ps.evaluate(pts, make(name))  # the facts are built inside the measure, as at a hook
                times.append(time.perf_counter() - t0)
            out[name] = statistics.median(times) * 1e6
        return out

    twenty = measure(PolicySet([parse(_TWENTY)]), facts_at)
    print("Policy evaluation, 20 YAML rules over 5 points, facts built per call (target: median < 50 us)")
    for name, us in twenty.items():
        print(f"  {name:13} median {us:6.2f} us")
    prompt = ("Please look at order A1 and tell the customer what happened. " * 10)[:600]
    examples = PolicySet(load(f) for f in sorted(Path("examples/policies").glob("*.yaml")))

    def with_text(point: str) -> Facts:
        f = facts_at(point)
        return Facts({**f, "text": prompt}, pii=_pii_kinds)

    shown = measure(examples, with_text)
    print("Policy evaluation, the 6 example policies (PII scan of a 600-character prompt where a rule asks)")
    for name, us in shown.items():
        print(f"  {name:13} median {us:6.2f} us")


async def audit(entries: int) -> None:
    from podium.observability.audit import verify
    from podium.storage.audit import AuditDraft
    from podium.storage.sqlite import SQLiteStore

    with tempfile.TemporaryDirectory() as tmp:
        store = SQLiteStore(Path(tmp) / "audit.db")
        await store.open()
        t = time.perf_counter()
        batch = 10_000
        for start in range(0, entries, batch):
            drafts = [
                AuditDraft("run.started", 1.7e9 + i, "api:ops", f"run-{i}", {"flow": "triage", "key": str(i)})
                for i in range(start, min(entries, start + batch))
            ]
            await store.audit_append(drafts)
        filled = time.perf_counter() - t
        singles = []
        for i in range(200):
            t = time.perf_counter()
            await store.audit_append([AuditDraft("run.cancelled", 2e9 + i, "cli:ops", f"run-{i}", None)])
            singles.append(time.perf_counter() - t)
        t = time.perf_counter()
        report = await verify(store)
        took = time.perf_counter() - t
        await store.close()
    print(f"Audit trail on SQLite, {report.entries:,} entries (target: verify under 10 s)")
    print(f"  append in batches of 10,000: {entries / filled:,.0f} entries/s")
    print(f"  append one entry (its own transaction): median {statistics.median(singles) * 1e3:.2f} ms")
    print(f"  verify: {took:.2f} s ({report.entries / took:,.0f} entries/s), intact: {report.ok}")


def authorization(rounds: int = 50, per_round: int = 10_000) -> None:
    from podium.errors import PermissionDeniedError
    from podium.policies.access import Permissions, Principal, authorize

    rules = Permissions.from_config(
        {
            "permissions": [
                *(
                    {"role": role, "flows": [f"team{i}.*", f"shared.flow{i}"], "actions": ["start", "cancel"]}
                    for i, role in enumerate(["operator", "approver", "viewer", "admin"] * 3)
                ),
                *(
                    {"key": f"bot-{i}", "flows": [f"svc{i}.*"], "actions": ["view", "signal"]}
                    for i in range(6)
                ),
                {
                    "role": "approver",
                    "flows": ["billing.*"],
                    "actions": ["approve"],
                    "approvals": ["refund*"],
                },
                {"role": "viewer", "flows": ["*"], "actions": ["view"]},
            ]
        }
    )
    assert len(rules.rules) == 20
    ops = Principal("ci", "operator", "acme")
    approver = Principal("ann", "approver", "acme")
    cases = [
        ("allowed start", lambda: authorize(ops, "start", flow="team8.deploy", tenant="acme", rules=rules)),
        (
            "allowed view (no rule)",
            lambda: authorize(ops, "view", flow="anything", tenant="acme", rules=rules),
        ),
        (
            "approval by name",
            lambda: authorize(
                approver, "approve", flow="billing.refund", tenant="acme", approval="refund-big", rules=rules
            ),
        ),
    ]

    def denied() -> None:
        try:
            authorize(ops, "start", flow="hr.payroll", tenant="acme", rules=rules)
        except PermissionDeniedError:
            pass

    cases.append(("denied (raises)", denied))
    print("Authorization check, 20 rules, a tenant principal (target: median under 20 us)")
    for name, fn in cases:
        medians = []
        for _ in range(rounds):
            t = time.perf_counter()
            for _ in range(per_round):
                fn()
            medians.append((time.perf_counter() - t) / per_round)
        print(f"  {name:24} median {statistics.median(medians) * 1e6:6.2f} us")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--docs", type=int, default=3000, help="labelled documents for PII detection")
    parser.add_argument("--audit", type=int, default=1_000_000, help="audit entries to verify")
    parser.add_argument("--only", choices=["pii", "policies", "audit", "authz"], help="run one part only")
    args = parser.parse_args()
    if args.only in (None, "pii"):
        pii(args.docs)
    if args.only in (None, "policies"):
        policies()
    if args.only in (None, "audit"):
        asyncio.run(audit(args.audit))
    if args.only in (None, "authz"):
        authorization()


if __name__ == "__main__":
    main()
