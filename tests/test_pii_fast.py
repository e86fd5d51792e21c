"""The shared scan of number runs and the colon-driven IPv6 search in ``podium.policies.pii`` find exactly
what a full pass of each detector's pattern finds: at the text's edges, next to words, with extensions."""

from __future__ import annotations

import pytest

from podium.policies.pii import DETECTORS, Finding, iban_valid, scan
from podium.testing.pii_corpus import corpus


def _spans(findings: list[Finding]) -> list[tuple[str, int, int]]:
    return [(f.kind, f.start, f.end) for f in findings]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("4111 1111 1111 1111", [("card", 0, 19)]),  # the whole text: no context on either side
        (
            "x4111 1111 1111 1111",
            [("phone", 6, 20)],
        ),  # no card after a letter
        ("card 4111-1111-1111-1111", [("card", 5, 24)]),  # at the very end
        ("see 536-22-8137.", [("ssn", 4, 15)]),
        ("(536-22-8137)", [("ssn", 1, 12)]),
        ("ssn 536 22 8137x", []),  # runs on into a word
        ("10.0.0.1", [("ip", 0, 8)]),
        ("v1.10.0.0.1", []),
        ("call +1 555 123 4567 ext. 89 now", [("phone", 5, 28)]),
        ("tel (030) 1234 5678", [("phone", 4, 19)]),
        ("fe80::1", [("ip", 0, 7)]),
        ("at ::1 now", [("ip", 3, 6)]),
        ("deadbeef:1:2:3", []),  # the hex run before the first colon is too long to start an address
        ("g2001:db8::1", []),  # after a letter
        ("x 2001:db8::8a2e:370:7334, 2001:db8::1", [("ip", 2, 25), ("ip", 27, 38)]),
        ("a:b:c and 1:2:3:4:5:6:7:8", [("ip", 10, 25)]),  # a:b:c has too few groups
    ],
)
def test_edges_of_number_runs_and_ipv6(text: str, expected: list[tuple[str, int, int]]) -> None:
    assert _spans(scan(text)) == expected


def test_a_detector_called_alone_finds_what_scan_finds() -> None:
    """``scan`` shares one scan of number runs between the detectors; a detector called on its own (as a
    policy may) makes its own and finds the same."""
    text = "\n".join(t for t, _ in corpus(300, seed=5))
    shared = scan(text)
    for kind, detect in DETECTORS.items():
        alone = sorted(_spans(list(detect(text))))
        kept = _spans([f for f in shared if f.kind == kind])
        assert set(kept) <= set(alone), kind  # scan drops the overlapped, never adds
        assert len(alone) >= len(kept) > 0, kind


def test_iban_checksum_reads_letters_and_rejects_other_characters() -> None:
    assert iban_valid("GB82WEST12345698765432")
    assert not iban_valid("GB82WEST1234569876543_")
    assert not iban_valid("GB82-EST12345698765432")
    assert not iban_valid("GB82WEST1234569876543²")
