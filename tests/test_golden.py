"""Golden journals: runs recorded by an earlier version must replay identically on today's code.

A changed flow that would take another path for such a run fails here, before a deploy, with the
NondeterminismError a worker would raise.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import podium
from podium.cli.demo import Resolution, support_triage
from podium.testing import replay, replay_file

GOLDEN = Path(__file__).parent / "golden"


async def test_recorded_refund_run_replays_to_the_same_output() -> None:
    recorded = json.loads((GOLDEN / "support_triage_refund.json").read_text())
    out = await replay_file(support_triage, GOLDEN / "support_triage_refund.json")
    assert isinstance(out, Resolution)
    assert out.model_dump(mode="json") == recorded["output"]
    # The reviewer's edit (900 -> 750) came from the journal, not from re-running anything.
    assert out.refund == 750.0
    assert out.approved_by == "demo-reviewer"


async def test_a_journal_cut_short_is_reported_as_nondeterminism() -> None:
    recorded = json.loads((GOLDEN / "support_triage_refund.json").read_text())
    journal = [e for e in recorded["journal"] if not (e["kind"] == "step" and e["name"] == "send_reply")]
    with pytest.raises(podium.NondeterminismError) as info:
        await replay(support_triage, journal)
    assert "send_reply" in str(info.value)
    assert "journal ends here" in str(info.value)


async def test_a_journal_of_another_path_is_reported_with_both_steps() -> None:
    recorded = json.loads((GOLDEN / "support_triage_refund.json").read_text())
    journal = []
    for e in recorded["journal"]:
        if e["kind"] == "step" and e["name"] == "model:embed":
            e = {**e, "name": "model:embed_v0"}
        journal.append(e)
    with pytest.raises(podium.NondeterminismError) as info:
        await replay(support_triage, journal)
    err = info.value
    assert err.position == "0"
    assert "model:embed_v0" in err.journaled and "model:embed" in err.requested
