"""A labelled corpus of personal data in realistic text, made offline with Faker, to measure a detector's
precision and recall per kind (``podium.policies.pii.scan`` or one of your own).

```python
docs = corpus(500, seed=1)                  # [(text, [(kind, start, end), ...]), ...]
report = score(docs, lambda text: [(f.kind, f.start, f.end) for f in scan(text)])
```
Each document mixes values of every kind in several locales with numbers that are not personal data (dates,
prices, order and tracking numbers, card-like numbers that fail Luhn, IBANs with a wrong checksum, UUIDs,
hashes, versions), so precision is measured against real look-alikes. Needs ``faker`` (a dev dependency).
"""

from __future__ import annotations

import random
import string
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

LOCALES = ("en_US", "en_GB", "de_DE", "fr_FR", "it_IT", "es_ES", "nl_NL")

_LEADS = {
    "email": ["email", "write to", "contact", "mail:", "cc"],
    "phone": ["call", "Tel.", "phone:", "mobile", "Telefon", "tél.", "reach me on"],
    "card": ["card", "Visa", "paid with", "card no."],
    "iban": ["IBAN", "account", "pay to", "IBAN:"],
    "ssn": ["SSN", "social security no.", "ssn:"],
    "ip": ["from IP", "host", "client", "server at"],
    "secret": ["key", "token", "export", "set"],
    None: ["order", "invoice", "tracking no.", "ref", "on", "at", "total", "item", "no."],
}
"""Words people put before a value, used half the time (the other half, a value follows plain words)."""

Span = tuple[str, int, int]
Doc = tuple[str, list[Span]]


def _secret(rng: random.Random) -> str:
    alnum = string.ascii_letters + string.digits
    pick = rng.randrange(7)
    if pick == 0:
        return "sk-proj-" + "".join(rng.choices(alnum + "_-", k=48))
    if pick == 1:
        return "AKIA" + "".join(rng.choices(string.ascii_uppercase + string.digits, k=16))
    if pick == 2:
        return "ghp_" + "".join(rng.choices(alnum, k=36))
    if pick == 3:
        return "sk-ant-api03-" + "".join(rng.choices(alnum + "_-", k=60))
    if pick == 4:
        return "xoxb-" + "-".join("".join(rng.choices(string.digits, k=12)) for _ in range(2))
    if pick == 5:
        return "sk_live_" + "".join(rng.choices(alnum, k=24))
    return "AIza" + "".join(rng.choices(alnum + "_-", k=35))


def _grouped(value: str, rng: random.Random) -> str:
    """A card number or IBAN as people write them: in groups of four, half the time."""
    if rng.random() < 0.5:
        return value
    return " ".join(value[i : i + 4] for i in range(0, len(value), 4))


def _not_luhn(rng: random.Random) -> str:
    from ..policies.pii import luhn

    while True:
        n = "4" + "".join(rng.choices(string.digits, k=15))
        if not luhn(n):
            return n


def _bad_iban(fake: object, rng: random.Random) -> str:
    iban: str = fake.iban()  # type: ignore[attr-defined]
    check = int(iban[2:4])
    return f"{iban[:2]}{(check + rng.randrange(1, 90)) % 100:02d}{iban[4:]}"


_KINDS = ["email", "phone", "card", "iban", "ssn", "ip", "secret"]


def _value(kind: str, fake: Any, us: Any, rng: random.Random) -> str:
    if kind == "email":
        return str(rng.choice([fake.email(), fake.company_email(), fake.free_email()]))
    if kind == "phone":
        return str(fake.phone_number())
    if kind == "card":
        return _grouped(fake.credit_card_number(), rng)
    if kind == "iban":
        return _grouped(fake.iban(), rng)
    if kind == "ssn":
        return str(us.ssn())
    if kind == "ip":
        return str(rng.choice([fake.ipv4(), fake.ipv4_private(), fake.ipv6()]))
    return _secret(rng)


def _noise(fake: Any, rng: random.Random) -> str:
    """A value that is not personal data, often one that looks like it."""
    pick = rng.randrange(16)
    values: list[Callable[[], object]] = [
        fake.date,
        lambda: fake.date(pattern="%d.%m.%Y"),
        lambda: f"{rng.uniform(1, 9999):.2f}",
        lambda: f"#{rng.randrange(10**5, 10**8)}",
        fake.postcode,
        fake.time,
        lambda: _not_luhn(rng),
        lambda: _bad_iban(fake, rng),
        fake.uuid4,
        lambda: fake.sha1()[:12],
        lambda: f"v{rng.randrange(1, 20)}.{rng.randrange(0, 30)}.{rng.randrange(0, 99)}",
        fake.ean13,
        fake.building_number,
        lambda: f"{rng.randrange(1, 100)}%",
        lambda: rng.randrange(1900, 2100),
        lambda: rng.randrange(10**9, 10**11),  # an order or account number, bare digits
    ]
    return str(values[pick]())


def corpus(n: int = 500, *, seed: int = 0, locales: Sequence[str] = LOCALES) -> list[Doc]:
    """``n`` documents with their labelled spans ``(kind, start, end)``."""
    try:
        from faker import Faker
    except ImportError as exc:  # pragma: no cover - a dev dependency
        raise ImportError("the PII corpus needs faker: pip install faker") from exc
    rng = random.Random(seed)
    fakers = {}
    for loc in locales:
        f = Faker(loc)
        f.seed_instance(seed)
        fakers[loc] = f
    us = Faker("en_US")
    us.seed_instance(seed + 1)
    docs: list[Doc] = []
    for i in range(n):
        fake = fakers[locales[i % len(locales)]]
        parts: list[str] = []
        spans: list[Span] = []
        pos = 0
        picks = rng.sample(_KINDS, k=rng.randrange(2, 5))
        items: list[tuple[str | None, str]] = [(kind, _value(kind, fake, us, rng)) for kind in picks]
        items += [(None, _noise(fake, rng)) for _ in range(rng.randrange(2, 5))]
        rng.shuffle(items)
        for kind, value in items:
            words = fake.sentence(nb_words=rng.randrange(3, 9)).rstrip(".")
            word = rng.choice(_LEADS[kind]) if rng.random() < 0.5 else rng.choice(["", "to", "id", ":"])
            lead = f"{words} {word} ".replace("  ", " ")
            parts.append(lead)
            pos += len(lead)
            if kind is not None:
                spans.append((kind, pos, pos + len(value)))
            parts.append(value)
            pos += len(value)
            tail = rng.choice([". ", ", ", "; ", " and ", ".\n"])
            parts.append(tail)
            pos += len(tail)
        docs.append(("".join(parts), spans))
    return docs


@dataclass(frozen=True, slots=True)
class KindScore:
    """Precision and recall of one kind: a finding counts only with the exact span and kind."""

    kind: str
    true_positives: int
    false_positives: int
    false_negatives: int

    @property
    def precision(self) -> float:
        found = self.true_positives + self.false_positives
        return self.true_positives / found if found else 1.0

    @property
    def recall(self) -> float:
        gold = self.true_positives + self.false_negatives
        return self.true_positives / gold if gold else 1.0


def score(docs: Iterable[Doc], detect: Callable[[str], Iterable[Span]]) -> dict[str, KindScore]:
    """Per kind, how ``detect`` does on ``docs``."""
    tp: dict[str, int] = {}
    fp: dict[str, int] = {}
    fn: dict[str, int] = {}
    for text, gold in docs:
        want = set(gold)
        got = set(detect(text))
        for kind, _, _ in got & want:
            tp[kind] = tp.get(kind, 0) + 1
        for kind, _, _ in got - want:
            fp[kind] = fp.get(kind, 0) + 1
        for kind, _, _ in want - got:
            fn[kind] = fn.get(kind, 0) + 1
    kinds = sorted(set(tp) | set(fp) | set(fn))
    return {k: KindScore(k, tp.get(k, 0), fp.get(k, 0), fn.get(k, 0)) for k in kinds}
