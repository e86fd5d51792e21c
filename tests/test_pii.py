"""Personal data detection and reversible masking (``podium.policies.pii``), measured on a labelled corpus
made with Faker in seven locales, with look-alike numbers that are not personal data."""

from __future__ import annotations

import pytest

from podium import UsageError
from podium.policies.pii import KINDS, Finding, iban_valid, luhn, mask, scan
from podium.testing.pii_corpus import corpus, score

STRUCTURED = ("card", "email", "iban", "ip", "secret", "ssn")


def test_precision_and_recall_per_kind_on_a_labelled_multilingual_corpus() -> None:
    docs = corpus(1500, seed=11)  # a seed the detectors were not tuned on
    report = score(docs, lambda text: [(f.kind, f.start, f.end) for f in scan(text)])
    assert set(report) == set(KINDS)
    for kind in STRUCTURED:
        s = report[kind]
        assert s.true_positives + s.false_negatives > 500, kind  # every kind is well represented
        assert s.recall >= 0.98 and s.precision >= 0.95, (kind, s)
    # Phone numbers written as bare digits with no word saying so cannot be told from order numbers: their
    # recall is lower, and reported by bench/governance.py rather than held to the structured target.
    assert report["phone"].recall >= 0.9 and report["phone"].precision >= 0.95, report["phone"]


@pytest.mark.parametrize(
    ("text", "kind", "value"),
    [
        ("write to jane.doe+billing@example.co.uk today", "email", "jane.doe+billing@example.co.uk"),
        ("card 4111 1111 1111 1111, exp 12/29", "card", "4111 1111 1111 1111"),
        ("Amex 378282246310005.", "card", "378282246310005"),
        ("pay to DE89 3704 0044 0532 0130 00 by Friday", "iban", "DE89 3704 0044 0532 0130 00"),
        ("IBAN GB82WEST12345698765432", "iban", "GB82WEST12345698765432"),
        ("SSN 536-22-8137 on file", "ssn", "536-22-8137"),
        ("from 192.168.10.254 at noon", "ip", "192.168.10.254"),
        ("host 2001:db8::8a2e:370:7334 is down", "ip", "2001:db8::8a2e:370:7334"),
        ("export OPENAI_API_KEY=sk-proj-abcdefghijklmnopqrstuvwxyz012345", "secret", None),
        ("db_password: 'correct-horse-battery'", "secret", "correct-horse-battery"),
        ("key AKIAIOSFODNN7EXAMPLE leaked", "secret", "AKIAIOSFODNN7EXAMPLE"),
        ("call +49 (0) 30 1234567 or", "phone", "+49 (0) 30 1234567"),
        ("ring (555) 123-4567x89 now", "phone", "(555) 123-4567x89"),
        ("Tel. 3401234567", "phone", "3401234567"),
    ],
)
def test_each_kind_is_found_with_its_exact_span(text: str, kind: str, value: str | None) -> None:
    found = scan(text)
    assert [f.kind for f in found] == [kind], found
    f = found[0]
    assert text[f.start : f.end] == f.value
    if value is not None:
        assert f.value == value
    else:  # the key's value only, not the variable's name
        assert f.value.startswith("sk-proj-")


@pytest.mark.parametrize(
    "text",
    [
        "order 4111111111111112 shipped",  # fails Luhn
        "barcode 4006381333931",  # an EAN-13, Luhn-valid but a product number
        "DE89 3704 0044 0532 0130 01",  # IBAN checksum wrong
        "version 1.2.3 of 999.1.1.1 and 10.0.0.256",
        "on 2024-05-01 at 12:30:45, total 1,234.56, order #58213377, tracking 4829103847",
        "the monkey = bananas and keyboard",
        "ratio 3:4:5 and time 10:20:30",
    ],
)
def test_look_alikes_are_not_personal_data(text: str) -> None:
    assert scan(text) == []


def test_mask_and_restore_round_trip_with_stable_placeholders() -> None:
    text = "Mail jane@example.org about card 4111 1111 1111 1111; cc jane@example.org."
    masked = mask(text)
    assert masked.text == "Mail [EMAIL_1] about card [CARD_1]; cc [EMAIL_1]."
    assert masked.kinds == {"email", "card"}
    answer = "I wrote to [EMAIL_1] about [CARD_1] and [UNKNOWN_7]."
    assert masked.restore(answer) == "I wrote to jane@example.org about 4111 1111 1111 1111 and [UNKNOWN_7]."
    # Several messages share one numbering, so a model's answer about any of them restores.
    mask("and bob@example.com, not jane@example.org", into=masked)
    assert masked.text == "and [EMAIL_2], not [EMAIL_1]"
    assert masked.restore("[EMAIL_2]") == "bob@example.com"


def test_kinds_select_detectors_and_extra_detectors_plug_in() -> None:
    text = "jane@example.org from 10.0.0.1, employee E-12345"
    assert [f.kind for f in scan(text, kinds={"ip"})] == ["ip"]

    def employee_ids(t: str) -> list[Finding]:
        i = t.find("E-")
        return [] if i < 0 else [Finding("employee", i, i + 7, t[i : i + 7])]

    assert mask(text, extra=[employee_ids]).text == "[EMAIL_1] from [IP_1], employee [EMPLOYEE_1]"
    with pytest.raises(UsageError, match="unknown kind"):
        scan(text, kinds={"ip", "dna"})


def test_numbers_never_issued_are_not_ssns() -> None:
    assert scan("SSN 000-12-3456 or 666-12-3456 or 912-34-5678 or 123-00-4567", kinds={"ssn"}) == []


def test_overlaps_resolve_to_the_stronger_kind() -> None:
    # A card number grouped 4-4-4-3 also looks like a phone number: the checksum wins.
    assert [f.kind for f in scan("Amex 3782 8224 6310 005 ok")] == ["card"]


def test_checksums() -> None:
    assert luhn("79927398713") and not luhn("79927398710")
    assert iban_valid("GB82WEST12345698765432") and not iban_valid("GB82WEST12345698765433")
    assert not iban_valid("XX82WEST12345698765432")
