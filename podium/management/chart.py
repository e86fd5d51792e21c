"""An evaluation as a chart: mean score per scorer, one bar per variant (SVG by hand; PNG with matplotlib).

```python
write_chart(report, "eval.svg")     # no dependency
write_chart(report, "eval.png")     # pip install podium[charts]
```
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import TYPE_CHECKING
from xml.sax.saxutils import escape

from ..errors import UsageError
from ..models.errors import MissingExtraError

if TYPE_CHECKING:
    from .evals import EvalReport

COLORS = ("#4e79a7", "#f28e2b", "#59a14f", "#e15759", "#76b7b2", "#edc948", "#b07aa1", "#9c755f")
_W, _H, _LEFT, _TOP, _BOTTOM = 720, 360, 48, 40, 70


def _groups(report: EvalReport) -> tuple[list[str], list[tuple[str, list[float | None]]]]:
    """Scorer names (plus ``score``, the mean) and each variant's values for them."""
    names = [*report.scorers, "score"]
    rows = [(v.name, [*(v.scores.get(s) for s in report.scorers), v.score]) for v in report.variants]
    return names, rows


def svg(report: EvalReport) -> str:
    """The chart as an SVG document (scores in [0, 1]; a missing score draws no bar)."""
    names, rows = _groups(report)
    plot_w, plot_h = _W - _LEFT - 16, _H - _TOP - _BOTTOM
    group_w = plot_w / len(names)
    bar_w = group_w * 0.8 / max(1, len(rows))
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{_W}" height="{_H}" viewBox="0 0 {_W} {_H}" '
        'font-family="sans-serif" font-size="11">',
        f'<rect width="{_W}" height="{_H}" fill="#ffffff"/>',
        f'<text x="{_LEFT}" y="20" font-size="14" font-weight="bold">'
        f"{escape(f'eval {report.id}: {report.flow} on {report.dataset} v{report.dataset_version}')}</text>",
    ]
    for tick in (0.0, 0.25, 0.5, 0.75, 1.0):
        y = _TOP + plot_h * (1 - tick)
        out.append(f'<line x1="{_LEFT}" y1="{y:.1f}" x2="{_W - 16}" y2="{y:.1f}" stroke="#dddddd"/>')
        out.append(f'<text x="{_LEFT - 6}" y="{y + 4:.1f}" text-anchor="end">{tick:g}</text>')
    for g, name in enumerate(names):
        x0 = _LEFT + g * group_w + group_w * 0.1
        for i, (_, values) in enumerate(rows):
            value = values[g]
            if value is None:
                continue
            h = plot_h * max(0.0, min(1.0, value))
            x, y = x0 + i * bar_w, _TOP + plot_h - h
            out.append(
                f'<rect x="{x:.1f}" y="{y:.1f}" width="{bar_w * 0.92:.1f}" height="{h:.1f}" '
                f'fill="{COLORS[i % len(COLORS)]}">'
                f"<title>{escape(rows[i][0])} {escape(name)}: {value:.3f}</title></rect>"
            )
            out.append(
                f'<text x="{x + bar_w * 0.46:.1f}" y="{y - 3:.1f}" text-anchor="middle">{value:.2f}</text>'
            )
        out.append(
            f'<text x="{_LEFT + (g + 0.5) * group_w:.1f}" y="{_TOP + plot_h + 16}" text-anchor="middle">'
            f"{escape(name)}</text>"
        )
    for i, (vname, _) in enumerate(rows):
        x, y = _LEFT + (i % 6) * 110, _H - 30 + (i // 6) * 14
        out.append(f'<rect x="{x}" y="{y - 9}" width="10" height="10" fill="{COLORS[i % len(COLORS)]}"/>')
        out.append(f'<text x="{x + 14}" y="{y}">{escape(vname)}</text>')
    out.append("</svg>\n")
    return "\n".join(out)


def png(report: EvalReport, path: Path) -> None:
    """The chart as a PNG file (needs matplotlib: ``pip install podium[charts]``)."""
    try:
        importlib.import_module("matplotlib").use("Agg")
        plt = importlib.import_module("matplotlib.pyplot")
    except ImportError:
        raise MissingExtraError(
            "a PNG chart needs matplotlib: pip install podium[charts] (or write .svg)"
        ) from None
    names, rows = _groups(report)
    fig, ax = plt.subplots(figsize=(7.2, 3.6))
    width = 0.8 / max(1, len(rows))
    for i, (vname, values) in enumerate(rows):
        xs = [g + i * width for g in range(len(names))]
        ax.bar(xs, [v or 0.0 for v in values], width, label=vname, color=COLORS[i % len(COLORS)])
    ax.set_xticks([g + 0.4 - width / 2 for g in range(len(names))], names)
    ax.set_ylim(0, 1)
    ax.set_title(f"eval {report.id}: {report.flow} on {report.dataset} v{report.dataset_version}")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def write_chart(report: EvalReport, path: str | Path) -> Path:
    """Write the chart to ``path`` (``.svg`` or ``.png``)."""
    p = Path(path)
    suffix = p.suffix.lower()
    if suffix not in (".svg", ".png"):
        raise UsageError(f"a chart is written as .svg or .png, not {p.name!r}")
    try:
        if suffix == ".svg":
            p.write_text(svg(report), encoding="utf-8")
        else:
            png(report, p)
    except OSError as exc:
        raise UsageError(f"cannot write the chart {p}: {exc}") from None
    return p
