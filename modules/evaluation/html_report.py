"""One self-contained HTML page of a scored dub (`unavglip eval --report`): the scores table, the drift, the leakage
section (`--leakage`), every plot and the frames of the worst and best moments as base64 PNG, and what was not
computed and why. Nothing in it is fetched: no scripts, no fonts, no links to other files, so it opens anywhere and
can be mailed as it is."""

import base64
import html

import numpy as np

from ..errors import SettingError
from .leakage import METRICS as LEAKAGE_METRICS
from .leakage import SETTINGS as LEAKAGE_SETTINGS
from .plots import HIGHER_IS_BETTER, LOWER_IS_BETTER, NEAREST_ZERO_IS_BETTER

STYLE = """
body { font-family: sans-serif; margin: 24px; color: #222; max-width: 1260px; }
h1 { font-size: 22px; } h2 { font-size: 18px; margin-top: 28px; border-bottom: 1px solid #ccc; }
table { border-collapse: collapse; font-size: 14px; }
th, td { border: 1px solid #ccc; padding: 4px 10px; text-align: left; }
td.number { text-align: right; font-variant-numeric: tabular-nums; }
th { background: #f2f2f2; } .missing { color: #888; }
img { max-width: 100%; border: 1px solid #ddd; }
.pair { display: flex; gap: 12px; flex-wrap: wrap; margin-bottom: 18px; }
.pair figure { margin: 0; } figcaption { font-size: 13px; color: #555; }
"""


def png_data_uri(rgb: np.ndarray) -> str:
    """uint8 RGB [H, W, 3] -> a data: URI of its PNG."""
    import cv2

    ok, encoded = cv2.imencode(".png", np.ascontiguousarray(np.asarray(rgb, np.uint8)[:, :, ::-1]))
    if not ok:
        raise SettingError(f"cannot encode an image of shape {np.shape(rgb)} as PNG for the report")
    return "data:image/png;base64," + base64.b64encode(encoded.tobytes()).decode("ascii")


def clock(seconds: float) -> str:
    minutes, rest = divmod(seconds, 60)
    return f"{int(minutes)}:{rest:05.2f}"


def better_word(metric: str) -> str:
    if metric in HIGHER_IS_BETTER:
        return "higher"
    if metric in LOWER_IS_BETTER:
        return "lower"
    return "nearer 0" if metric in NEAREST_ZERO_IS_BETTER else ""


def _cell(entry: dict) -> str:
    if not entry.get("computed"):
        return '<td class="missing">not computed</td>'
    value, spread = entry.get("value"), entry.get("std")
    text = f"{value:.4f}" if isinstance(value, float) else html.escape(str(value))
    if isinstance(spread, float):
        text += f" &plusmn; {spread:.4f}"
    if "frames" in entry:
        text += f' <span class="missing">({entry["frames"]} frames)</span>'
    return f'<td class="number">{text}</td>'


def scores_table(summaries: dict) -> str:
    names = []
    for summary in summaries.values():
        names += [name for name in summary["metrics"] if name not in names]
    head = "".join(f"<th>{html.escape(label)}</th>" for label in summaries)
    rows = [f"<tr><th>metric</th><th>better</th>{head}</tr>"]
    for name in names:
        cells = "".join(_cell(s["metrics"].get(name, {})) for s in summaries.values())
        rows.append(f"<tr><td>{html.escape(name)}</td><td>{better_word(name)}</td>{cells}</tr>")
    return '<table id="scores">' + "".join(rows) + "</table>"


def drift_table(summaries: dict) -> str:
    with_drift = {label: s["drift"] for label, s in summaries.items() if "drift" in s}
    if not with_drift:
        return "<p>No drift was scored.</p>"
    seconds = next(iter(with_drift.values()))["window_seconds"]
    head = "".join(f"<th>{html.escape(label)}</th>" for label in with_drift)
    rows = [f"<tr><th>metric (windows of {seconds:g} s)</th>{head}</tr>"]
    for name in next(iter(with_drift.values()))["metrics"]:
        cells = []
        for drift in with_drift.values():
            entry = drift["metrics"][name]
            if entry["computed"]:
                cells.append(f'<td>{html.escape(entry["says"])} ({len(entry["windows"])} windows)</td>')
            else:
                cells.append('<td class="missing">not computed</td>')
        rows.append(f"<tr><td>{html.escape(name)}</td>{''.join(cells)}</tr>")
    return '<table id="drift">' + "".join(rows) + "</table>"


def moments_section(moments, fps: float) -> str:
    parts = []
    for metric, end, kept in moments.moments() if moments is not None else []:
        caption = (f"{'Lowest' if end == 'lowest' else 'Highest'} {html.escape(metric)}: {kept['value']:.4f} at "
                   f"{clock(kept['frame'] / fps)} (frame {kept['frame']})")
        figures = [f'<figure><img alt="dub" src="{png_data_uri(kept["generated"])}"><figcaption>dub</figcaption>'
                   "</figure>"]
        if kept["original"] is not None:
            figures.append(f'<figure><img alt="original" src="{png_data_uri(kept["original"])}"><figcaption>'
                           "original</figcaption></figure>")
        parts.append(f"<h3>{caption}</h3><div class=\"pair\">{''.join(figures)}</div>")
    return "".join(parts)


def not_computed(summaries: dict, moments) -> list[str]:
    """One line per metric (and drift) not computed, with why."""
    lines = []
    several = len(summaries) > 1
    for label, summary in summaries.items():
        prefix = f"{label}: " if several else ""
        for name, entry in summary["metrics"].items():
            if not entry["computed"]:
                lines.append(f"{prefix}{name}: {entry['why']}")
        for name, entry in summary.get("drift", {}).get("metrics", {}).items():
            if not entry["computed"]:
                lines.append(f"{prefix}drift of {name}: {entry['why']}")
    if moments is None or not moments.moments():
        lines.append("worst and best frames: they need identity (face analysis with an original or reference "
                     "photos) or SSIM (an original)")
    return lines


def leakage_section(leakage: dict) -> str:
    """The leakage table (`eval --leakage`): each metric, which way is better, its value and setting; then the
    open-mouth threshold, what each re-dub was driven by, and what was not computed."""
    rows = ["<tr><th>metric</th><th>better</th><th>value</th><th>setting</th></tr>"]
    for name, entry in leakage["metrics"].items():
        why = html.escape(entry.get("why", ""))
        cell = _cell(entry) if entry["computed"] else f'<td class="missing">not computed: {why}</td>'
        rows.append(f"<tr><td>{html.escape(name)}</td><td>{html.escape(LEAKAGE_METRICS.get(name, ('', ''))[1])}</td>"
                    f"{cell}<td>{html.escape(LEAKAGE_SETTINGS.get(entry['setting'], entry['setting']))}</td></tr>")
    facts = [f"open-mouth threshold: {leakage['threshold']['says']}"]
    facts += [f"{key}: {value}" for key, value in leakage["inputs"].items()] + list(leakage["notes"])
    return ('<table id="leakage">' + "".join(rows) + "</table><ul>"
            + "".join(f"<li>{html.escape(str(fact))}</li>" for fact in facts) + "</ul>")


def html_report(summaries: dict, plots: list, moments=None, title: str = "Dub scores", leakage: dict | None = None
                ) -> str:
    """summaries: {label: DubScorer.summary(...)} (may be empty with a leakage section); plots: [(caption, uint8
    RGB image)]; moments: the moments.WorstAndBest of the first summary's dub, or None; leakage: `eval --leakage`'s
    section (leakage.leakage_summary), or None."""
    body = [f"<h1>{html.escape(title)}</h1>"]
    first = next(iter(summaries.values()), None)
    if first is not None:
        facts = [f"{first['frames']} frames at {first['fps']:g} fps ({clock(first['frames'] / first['fps'])})"]
        for key, value in first.get("inputs", {}).items():
            if value:
                facts.append(f"{key}: {', '.join(value) if isinstance(value, list) else value}")
        if "original_aligned" in first:
            facts.append(first["original_aligned"])
        body += ["<ul>" + "".join(f"<li>{html.escape(f)}</li>" for f in facts) + "</ul>",
                 "<h2>Scores</h2>", scores_table(summaries), "<h2>Drift</h2>", drift_table(summaries)]
    if leakage is not None:
        body += ['<h2 id="leakage-section">Leakage: does the model copy its reference mouth?</h2>',
                 leakage_section(leakage)]
    for caption, image in plots:
        body.append(f'<h2>{html.escape(caption)}</h2><img alt="{html.escape(caption)}" src="{png_data_uri(image)}">')
    shown = moments_section(moments, first["fps"]) if first is not None else ""
    if shown:
        body += ["<h2>Worst and best moments</h2>", shown]
    missing = not_computed(summaries, moments) if first is not None else []
    if leakage is not None:
        missing += [f"leakage {name}: {entry['why']}" for name, entry in leakage["metrics"].items()
                    if not entry["computed"]]
    body += ['<h2 id="not-computed">Not computed</h2>',
             "<ul>" + "".join(f"<li>{html.escape(line)}</li>" for line in missing) + "</ul>" if missing
             else "<p>Every metric was computed.</p>"]
    return (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>'
            f"<style>{STYLE}</style></head><body>\n" + "\n".join(body) + "\n</body></html>\n")


def write_html_report(path: str, summaries: dict, plots: list, moments=None, title: str = "Dub scores",
                      leakage: dict | None = None) -> None:
    text = html_report(summaries, plots, moments, title, leakage)
    try:
        with open(path, "w", encoding="utf-8") as handle:
            handle.write(text)
    except OSError as error:
        raise SettingError(f"cannot write the report {path} ({error.strerror}); give an .html path in a folder that "
                           "exists") from error
