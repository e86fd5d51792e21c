"""Personal data in text: detection of structured identifiers, and reversible masking.

``scan(text)`` finds e-mail addresses, phone numbers, payment card numbers (Luhn), IBANs (ISO 13616 mod-97
checksum and country length), US social security numbers, IPv4/IPv6 addresses and secrets (provider API keys,
private keys, tokens, ``password=...``). Checksums and number-plan rules keep precision high: a 16-digit
order number that fails Luhn is not a card, ``000-12-3456`` is not an SSN.

``mask(text)`` replaces each finding with a placeholder such as ``[EMAIL_1]`` (the same value gets the same
placeholder) and returns a ``Masked`` whose ``restore(answer)`` puts the original values back into a model's
answer. The placeholders are what an external model sees.

```python
masked = mask("Refund jane@example.org, card 4111 1111 1111 1111")
masked.text        # 'Refund [EMAIL_1], card [CARD_1]'
masked.restore("Done for [EMAIL_1].")   # 'Done for jane@example.org.'
```

Names and postal addresses need a language model (NER); none ships offline with Podium, so they are not
detected here (a policy can add a detector of its own: any callable ``str -> Iterable[Finding]``).
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable, Collection, Iterable
from contextvars import ContextVar
from dataclasses import dataclass, field

KINDS = ("email", "phone", "card", "iban", "ssn", "ip", "secret")
"""The kinds of personal data ``scan`` detects."""


@dataclass(frozen=True, slots=True)
class Finding:
    """One piece of personal data: its kind and where it is (``text[start:end]``)."""

    kind: str
    start: int
    end: int
    value: str


Detector = Callable[[str], Iterable[Finding]]

# -- e-mail ---------------------------------------------------------------------------------------
_EMAIL = re.compile(
    r"[A-Za-z0-9][\w.%+-]{0,63}@(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+[A-Za-z]{2,24}\b"
)


def _emails(text: str) -> Iterable[Finding]:
    at = text.find("@")
    end = 0
    while at >= 0:
        begin = at
        while begin > end and begin > at - 64 and (text[begin - 1].isalnum() or text[begin - 1] in "._%+-"):
            begin -= 1
        while begin < at and not text[begin].isalnum():  # the local part starts with a letter or digit
            begin += 1
        m = _EMAIL.match(text, begin) if begin < at else None
        if m is not None:
            end = m.end()
            yield Finding("email", m.start(), end, m.group())
        at = text.find("@", max(at + 1, end))


# -- numbers: one shared scan for the detectors of numbers ------------------------------------------
# Cards, SSNs, IPv4 addresses and phone numbers start with a digit after no word character (or a phone
# number with "+" or "("), and hold only the characters below. One scan finds those runs of at least six
# characters (the shortest number any of them accepts); each detector then runs its own pattern on the runs
# long enough for it only, instead of a pass of its own over the whole text (dense text has a digit in every
# few characters, and each pass tries its pattern at each digit).
_NUMBER = re.compile(r"(?:[+(]|\d(?<!\w\d))[\d .\-/()+#xet]{5,}")
_RUNS: ContextVar[tuple[str, list[tuple[int, int]]] | None] = ContextVar("podium_pii_runs", default=None)


def _number_runs(text: str) -> list[tuple[int, int]]:
    """The ``(start, end)`` of each run of number characters in ``text``: every card, SSN, IPv4 address and
    phone number lies inside one. ``scan`` shares one list between the detectors of a text."""
    shared = _RUNS.get()
    if shared is not None and shared[0] is text:
        return shared[1]
    return [m.span() for m in _NUMBER.finditer(text)]


def _in_runs(pattern: re.Pattern[str], text: str, shortest: int) -> list[re.Match[str]]:
    """``pattern.finditer(text)`` for a pattern whose matches lie inside number runs and are ``shortest``
    characters or longer. A match may look two characters past its run (``endpos`` is two further)."""
    return [
        m
        for start, end in _number_runs(text)
        if end - start >= shortest
        for m in pattern.finditer(text, start, end + 2)
    ]


# -- payment cards --------------------------------------------------------------------------------
_CARD = re.compile(r"\d(?<![\w.,/-]\d)(?:[ -]?\d){11,18}(?![\w/-]|[.,]\d)")


def luhn(digits: str) -> bool:
    """Whether a string of digits passes the Luhn check."""
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = ord(ch) - 48
        if i % 2:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return total % 10 == 0


def _card_prefix(d: str) -> bool:
    """Issuer ranges of the card networks (Visa, Mastercard, Amex, Diners, Discover, JCB, Maestro, UnionPay,
    Mir): a Luhn-valid number outside them is far more likely an account or order number."""
    n = len(d)
    if d[0] == "4":
        return n in (13, 16, 19)
    two, four = int(d[:2]), int(d[:4])
    if 51 <= two <= 55 or 2221 <= four <= 2720:
        return n == 16
    if two in (34, 37):
        return n == 15
    if two in (36, 38, 39) or 300 <= int(d[:3]) <= 305:
        return 14 <= n <= 19
    if d[:4] == "6011" or d[:2] == "65" or 644 <= int(d[:3]) <= 649 or 622126 <= int(d[:6]) <= 622925:
        return 16 <= n <= 19
    if two == 35:  # JCB (3528-3589 today; older numbers use the whole 35 range)
        return 16 <= n <= 19
    if d[:4] in ("2131", "1800"):  # JCB's older 15-digit numbers
        return n == 15
    if d[:4] == "0604":  # Maestro
        return 12 <= n <= 19
    if two in (50, 56, 57, 58, 63, 67) or d[0] == "6":
        return 12 <= n <= 19
    return two == 22 and d[:4] in ("2200", "2201", "2202", "2203", "2204") and n == 16


def _cards(text: str) -> Iterable[Finding]:
    for m in _in_runs(_CARD, text, 12):
        raw = m.group()
        digits = raw.replace(" ", "").replace("-", "")
        if not 12 <= len(digits) <= 19 or not _card_prefix(digits) or not luhn(digits):
            continue
        if len(raw) == 13 and _ean13(digits):  # a product's barcode number, far likelier than a
            continue  # 13-digit card (issued no more)
        yield Finding("card", m.start(), m.end(), raw)


def _ean13(d: str) -> bool:
    return (10 - sum(int(c) * (3 if i % 2 else 1) for i, c in enumerate(d[:12])) % 10) % 10 == int(d[12])


# -- IBAN -----------------------------------------------------------------------------------------
IBAN_LENGTHS = {
    "AD": 24, "AE": 23, "AL": 28, "AT": 20, "AZ": 28, "BA": 20, "BE": 16, "BG": 22, "BH": 22, "BI": 27,
    "BR": 29, "BY": 28, "CH": 21, "CR": 22, "CY": 28, "CZ": 24, "DE": 22, "DJ": 27, "DK": 18, "DO": 28,
    "EE": 20, "EG": 29, "ES": 24, "FI": 18, "FK": 18, "FO": 18, "FR": 27, "GB": 22, "GE": 22, "GI": 23,
    "GL": 18, "GR": 27, "GT": 28, "HR": 21, "HU": 28, "IE": 22, "IL": 23, "IQ": 23, "IS": 26, "IT": 27,
    "JO": 30, "KW": 30, "KZ": 20, "LB": 28, "LC": 32, "LI": 21, "LT": 20, "LU": 20, "LV": 21, "LY": 25,
    "MC": 27, "MD": 24, "ME": 22, "MK": 19, "MN": 20, "MR": 27, "MT": 31, "MU": 30, "NI": 28, "NL": 18,
    "NO": 15, "OM": 23, "PK": 24, "PL": 28, "PS": 29, "PT": 25, "QA": 29, "RO": 24, "RS": 22, "RU": 33,
    "SA": 24, "SC": 31, "SD": 18, "SE": 24, "SI": 19, "SK": 24, "SM": 27, "SO": 23, "ST": 25, "SV": 28,
    "TL": 23, "TN": 24, "TR": 26, "UA": 29, "VA": 22, "VG": 24, "XK": 20, "YE": 30,
}  # fmt: skip
"""Each country's IBAN length (ISO 13616 registry)."""

_IBAN_BODIES = {n: re.compile(rf"(?:[ ]?[A-Z0-9]){{{n - 4}}}") for n in set(IBAN_LENGTHS.values())}

_IBAN = re.compile(r"([A-Z](?<!\w[A-Z])[A-Z])(\d{2})((?:[ ]?[A-Z0-9]){10,30})")


def iban_valid(iban: str) -> bool:
    """Whether ``iban`` (no spaces) has its country's length and a valid mod-97 checksum."""
    if IBAN_LENGTHS.get(iban[:2]) != len(iban):
        return False
    moved = (iban[4:] + iban[:4]).translate(_LETTER_VALUES)  # A=10 ... Z=35
    if not moved.isdigit():
        return False
    try:
        return int(moved) % 97 == 1
    except ValueError:  # digits int() does not read (superscripts)
        return False


_LETTER_VALUES = {
    ord(ch): str(value)
    for value, ch in enumerate("abcdefghijklmnopqrstuvwxyz", start=10)
    for ch in (ch, ch.upper())
}


def _ibans(text: str) -> Iterable[Finding]:
    for m in _IBAN.finditer(text):
        length = IBAN_LENGTHS.get(m.group(1))
        if length is None:
            continue
        # The body may run on into the next word (upper case, digits): take exactly the country's length.
        body = _IBAN_BODIES[length].match(text, m.start(3), m.end(3))
        if body is None:
            continue
        end = body.end()
        raw = text[m.start() : end]
        compact = raw.replace(" ", "")
        if iban_valid(compact) and not (end < len(text) and text[end].isalnum()):
            yield Finding("iban", m.start(), end, raw)


# -- US social security numbers -------------------------------------------------------------------
_SSN = re.compile(r"\d(?<![\w-]\d)\d\d([- ])\d\d\1\d{4}(?![\w-])")


def _ssns(text: str) -> Iterable[Finding]:
    for m in _in_runs(_SSN, text, 11):
        raw = m.group()
        area, group, serial = raw[:3], raw[4:6], raw[7:]
        if area not in ("000", "666") and area[0] != "9" and group != "00" and serial != "0000":
            yield Finding("ssn", m.start(), m.end(), raw)


# -- IP addresses ---------------------------------------------------------------------------------
_IPV4 = re.compile(r"\d(?<![\w.]\d)\d{0,2}(?:\.\d{1,3}){3}(?![\w]|\.\d)")
_IPV6 = re.compile(r"(?<![\w:])(?:[0-9A-Fa-f]{0,4}:){2,7}[0-9A-Fa-f]{0,4}(?![\w:])")
_HEX = frozenset("0123456789abcdefABCDEF")


def _ips(text: str) -> Iterable[Finding]:
    if "." in text:
        for m in _in_runs(_IPV4, text, 7):
            raw = m.group()
            if all(int(o) <= 255 and (o == "0" or o[0] != "0") for o in raw.split(".")):
                yield Finding("ip", m.start(), m.end(), raw)
    if "::" in text or text.count(":") >= 3:
        # An IPv6 address starts at most four hex digits before its first colon, after no word character
        # and no colon: try the pattern there only (a scan from every hex letter of the text is slow).
        colon = text.find(":")
        while colon >= 0:
            start = colon
            while start > colon - 4 and start and text[start - 1] in _HEX:
                start -= 1
            v6 = _IPV6.match(text, start) if not (start and text[start - 1] in _HEX) else None
            if v6 is None:
                colon = text.find(":", colon + 1)
                continue
            colon = text.find(":", v6.end())
            raw = v6.group()
            if raw.count(":") < 2 or not any(c not in ":" for c in raw):
                continue
            try:
                ipaddress.IPv6Address(raw)
            except ValueError:
                continue
            yield Finding("ip", v6.start(), v6.end(), raw)


# -- secrets --------------------------------------------------------------------------------------
_KEY = re.compile(
    r"""
      sk-(?:proj-|ant-(?:api\d\d-)?)?[A-Za-z0-9_-]{20,}          # OpenAI, Anthropic
    | (?:sk|rk|pk)_(?:live|test)_[A-Za-z0-9]{16,}                # Stripe
    | A(?:KIA|SIA)[0-9A-Z]{16}                                   # AWS access key id
    | gh[pousr]_[A-Za-z0-9]{36,}                                 # GitHub tokens
    | github_pat_[A-Za-z0-9_]{40,}
    | xox[abprs]-[A-Za-z0-9-]{10,}                               # Slack
    | AIza[0-9A-Za-z_-]{35}                                      # Google API key
    | glpat-[A-Za-z0-9_-]{20,}                                   # GitLab
    | hf_[A-Za-z0-9]{30,}                                        # model hub tokens
    """,
    re.VERBOSE,
)
_TOKEN = re.compile(r"[A-Za-z0-9_-]{16,}")
_JWT = re.compile(r"eyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}")
_PEM = re.compile(r"-----BEGIN[ A-Z]*PRIVATE KEY-----[\s\S]*?-----END[ A-Z]*PRIVATE KEY-----")
_ASSIGNED = re.compile(
    r"""(?i:(?:[\w-]*[_-])?(?:api|access|auth|secret|private|client)?(?:key|secret|token|passw(?:or)?d|pwd))\b
    ["']?\s*[:=]\s*["']?(?P<value>[^\s"',;]{8,})""",
    re.VERBOSE,
)
_WORDS = ("key", "secret", "token", "passw", "pwd")


def _secrets(text: str) -> Iterable[Finding]:
    # Long tokens first (a cheap scan), then the providers' key formats on those only.
    for m in _TOKEN.finditer(text):
        start = m.start()
        if start and (text[start - 1].isalnum() or text[start - 1] in "_-"):
            continue
        key = _KEY.match(m.group())
        if key is not None and (key.end() == len(m.group()) or not m.group()[key.end()].isalnum()):
            yield Finding("secret", start, start + key.end(), key.group())
    if "eyJ" in text:
        for m in _JWT.finditer(text):
            yield Finding("secret", m.start(), m.end(), m.group())
    if "-----BEGIN" in text:
        for m in _PEM.finditer(text):
            yield Finding("secret", m.start(), m.end(), m.group())
    # ``password = hunter2hunter2``, ``OPENAI_API_KEY: ...``: find the words, then read what is assigned.
    if "=" not in text and ":" not in text:
        return
    lower = text.lower()
    seen: set[int] = set()
    for word in _WORDS:
        at = lower.find(word)
        while at >= 0:
            begin = at
            while begin and (text[begin - 1].isalnum() or text[begin - 1] in "_-"):
                begin -= 1
            if begin not in seen:
                seen.add(begin)
                assigned = _ASSIGNED.match(text, begin)
                if assigned is not None:
                    v = assigned
                    yield Finding("secret", v.start("value"), v.end("value"), v.group("value"))
            at = lower.find(word, at + len(word))


# -- phone numbers --------------------------------------------------------------------------------
_PHONE = re.compile(
    r"""
    # a country code, an area code in brackets, or a digit (the look-behinds follow the first character,
    # so that the scan skips quickly to the characters a number can start with)
    (?: \+(?<![\w+/.-]\+)\d{1,3} | \((?<![\w+/.-]\()\d{1,5}\) | \d(?<![\w+/.-]\d) )
    (?: [ ]?\(0\)[ ]? | [ .\-/]?\(\d{1,5}\)[ ]? | [ .\-/]? \d ){5,16}
    (?: [ ]?(?:x|ext\.?|\#)[ ]?\d{1,6} )?                   # an extension
    (?![\w/]|[.,-]\d)
    """,
    re.VERBOSE,
)
_EXTENSION = re.compile(r"[ ]?(?:x|ext\.?|#)")
_NOT_DIGITS = str.maketrans("", "", " .-/()+")
_DATE = re.compile(r"\d{4}[-./]\d{1,2}[-./]\d{1,2}|\d{1,2}[-./]\d{1,2}[-./]\d{2,4}")


def _phones(text: str) -> Iterable[Finding]:
    for m in _in_runs(_PHONE, text, 6):
        raw = m.group()
        main = _EXTENSION.split(raw, maxsplit=1)[0] if "x" in raw or "#" in raw else raw
        digits = len(main.translate(_NOT_DIGITS))  # main holds digits, separators and a leading +
        if not 7 <= digits <= 15:
            continue
        first = raw[0]
        separated = len(main) - digits > (first == "+")
        if separated and _DATE.fullmatch(main):
            continue
        # A run of bare digits is a phone number only when it starts like one (0, 00, +): otherwise it is
        # as likely an order or account number.
        if (
            first == "+"
            or first == "("
            or (first == "0" and 9 <= digits <= 12)
            or (separated and _grouped(main))
        ):
            yield Finding("phone", m.start(), m.end(), raw)
        elif (
            not separated
            and 10 <= digits <= 11
            and _PHONE_WORDS.search(text, max(0, m.start() - 24), m.start())
        ):
            yield Finding("phone", m.start(), m.end(), raw)  # bare digits, but said to be a phone number


_PHONE_WORDS = re.compile(
    r"(?i)\b(?:phone|tel|call|mobile|cell|fax|whatsapp|sms|telefon|telefono|téléphone|tél|portable|"
    r"móvil|handy|mobiel|cellulare)\b"
)


_SEPARATORS = re.compile(r"[ .\-/()]+")


def _grouped(main: str) -> bool:
    """Digits in the groups phone numbers are written in (``555-123-4567``, ``06 12 34 56 78``,
    ``333 1234567``), not a number with one stray separator."""
    groups = [g for g in _SEPARATORS.split(main) if g]
    if len(groups) < 2 or any(len(g) > 8 for g in groups) or len(groups[-1]) < 2:
        return False
    return all(len(g) > 1 for g in groups[1:])  # single digits: an address, a version, not a phone


DETECTORS: dict[str, Detector] = {
    "email": _emails,
    "card": _cards,
    "iban": _ibans,
    "ssn": _ssns,
    "ip": _ips,
    "secret": _secrets,
    "phone": _phones,
}
"""The built-in detectors by kind, in the order overlaps are resolved (earlier wins)."""

_RANK = {kind: i for i, kind in enumerate(DETECTORS)}
_NUMBER_KINDS = ("card", "ssn", "ip", "phone")  # the detectors that read number runs


def scan(text: str, kinds: Collection[str] | None = None, *, extra: Iterable[Detector] = ()) -> list[Finding]:
    """The personal data in ``text``, in order, without overlaps (a card number is not also a phone
    number). ``kinds`` limits the search (default: all of ``KINDS``); ``extra`` adds detectors."""
    if kinds is not None:
        unknown = set(kinds) - set(DETECTORS)
        if unknown:
            from ..errors import UsageError

            raise UsageError(
                f"unknown kind(s) of personal data: {', '.join(sorted(unknown))} (known: {KINDS})"
            )
    found: list[Finding] = []
    numbers = kinds is None or sum(kind in kinds for kind in _NUMBER_KINDS) > 1  # worth sharing the runs
    token = _RUNS.set((text, _number_runs(text)) if numbers else None)
    try:
        for kind, detect in DETECTORS.items():
            if kinds is None or kind in kinds:
                found.extend(detect(text))
    finally:
        _RUNS.reset(token)
    for detect in extra:
        found.extend(detect(text))
    if len(found) < 2:
        return found
    found.sort(key=lambda f: (f.start, _RANK.get(f.kind, len(_RANK)), -(f.end - f.start)))
    kept: list[Finding] = []
    for f in found:
        if kept and f.start < kept[-1].end:
            prev = kept[-1]
            better = _RANK.get(f.kind, len(_RANK)) < _RANK.get(prev.kind, len(_RANK))
            if better and f.end - f.start >= prev.end - prev.start:
                kept[-1] = f
            continue
        kept.append(f)
    return kept


@dataclass(slots=True)
class Masked:
    """Text with its personal data replaced by placeholders, and the way back."""

    text: str
    values: dict[str, str] = field(default_factory=dict)  # placeholder -> original value
    findings: list[Finding] = field(default_factory=list)

    def restore(self, text: str) -> str:
        """``text`` (e.g. a model's answer) with every placeholder put back to its original value."""
        if not self.values or "[" not in text:
            return text
        return _PLACEHOLDER.sub(lambda m: self.values.get(m.group(), m.group()), text)

    @property
    def kinds(self) -> set[str]:
        return {f.kind for f in self.findings}


_PLACEHOLDER = re.compile(r"\[[A-Z]+_\d+\]")


def mask(
    text: str,
    kinds: Collection[str] | None = None,
    *,
    extra: Iterable[Detector] = (),
    into: Masked | None = None,
) -> Masked:
    """``text`` with each finding replaced by ``[KIND_n]`` (the same value, the same placeholder). Pass
    ``into`` to mask several texts (a conversation) with one numbering, so ``restore`` works on all."""
    findings = scan(text, kinds, extra=extra)
    masked = into if into is not None else Masked("")
    if not findings:
        masked.text = text
        return masked
    by_value = {v: k for k, v in masked.values.items()}
    counts: dict[str, int] = {}
    for placeholder in masked.values:
        kind = placeholder[1 : placeholder.rindex("_")]
        counts[kind] = max(counts.get(kind, 0), int(placeholder[placeholder.rindex("_") + 1 : -1]))
    parts: list[str] = []
    pos = 0
    for f in findings:
        known = by_value.get(f.value)
        if known is not None:
            placeholder = known
        else:
            kind = f.kind.upper()
            counts[kind] = counts.get(kind, 0) + 1
            placeholder = f"[{kind}_{counts[kind]}]"
            by_value[f.value] = placeholder
            masked.values[placeholder] = f.value
        parts.append(text[pos : f.start])
        parts.append(placeholder)
        pos = f.end
    parts.append(text[pos:])
    masked.text = "".join(parts)
    masked.findings.extend(findings)
    return masked
