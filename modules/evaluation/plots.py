"""Per-frame curves and drift of one or more scored dubs, drawn with matplotlib into an RGB image (no window, no
pyplot state: a Figure with its own Agg canvas, so nothing process-wide changes); their table, and its order."""

import numpy as np

from ..errors import SettingError

PANELS = (  # (curve, title, y label)
    ("identity_cosine", "Identity: ArcFace cosine to the person", "cosine"),
    ("ssim_mouth", "Sharpness: SSIM of the mouth half", "SSIM"),
    ("sync_confidence", "Lip sync: SyncNet confidence per frame", "confidence"),
    ("mouth_opening", "Mouth opening (grey: silent speech)", "gap / face height"),
)


METRIC_OF_CURVE = {"sync_confidence": "lse_c"}  # curves named otherwise than the metric that reports them


def plot_scores(summaries: dict, width_px: int = 1200) -> np.ndarray:
    """summaries: {label: DubScorer.summary(...)} -> uint8 RGB [H, W, 3]; panels with no curve say so."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(width_px / 100, 2.2 * len(PANELS)), dpi=100, layout="constrained")
    FigureCanvasAgg(figure)
    axes = figure.subplots(len(PANELS), 1, sharex=True)
    for axis, (curve, title, label) in zip(axes, PANELS):
        axis.set_title(title, fontsize=10, loc="left")
        axis.set_ylabel(label, fontsize=8)
        drawn = False
        for name, summary in summaries.items():
            values = summary["per_frame"].get(curve)
            if values is None:
                continue
            series = np.array([np.nan if v is None else v for v in values], np.float64)
            if curve == "sync_confidence":
                legend = f"{name} (LSE-C {summary['metrics']['lse_c']['value']:.2f})"
            else:
                legend = f"{name} (mean {summary['metrics'][curve]['value']:.3f})"
            axis.plot(np.arange(len(series)), series, linewidth=1.2, label=legend)
            drawn = True
            silent = summary["per_frame"].get("silent")
            if curve == "mouth_opening" and silent:
                axis.fill_between(np.arange(len(silent)), 0, 1, where=silent, color="0.85", step="mid",
                                  transform=axis.get_xaxis_transform(), zorder=0)
        if drawn:
            axis.legend(fontsize=8, loc="lower right")
        else:
            metric = METRIC_OF_CURVE.get(curve, curve)
            reasons = {s["metrics"].get(metric, {}).get("why") for s in summaries.values()} - {None}
            axis.text(0.5, 0.5, "not computed: " + ("; ".join(sorted(reasons)) or "no data"),
                      ha="center", va="center", transform=axis.transAxes, fontsize=9, color="0.4")
        axis.grid(alpha=0.3)
    axes[-1].set_xlabel("frame")
    figure.canvas.draw()
    return np.asarray(figure.canvas.buffer_rgba())[:, :, :3].copy()


DRIFT_PANELS = (  # (metric, title, y label)
    ("identity_cosine", "Identity per window: ArcFace cosine to the person", "cosine"),
    ("ssim", "Sharpness per window: SSIM against the original", "SSIM"),
    ("lse_c", "Lip sync per window: LSE-C (SyncNet confidence)", "LSE-C"),
)


def plot_drift(summaries: dict, width_px: int = 1200) -> np.ndarray:
    """The drift of each summary (its "drift" section): window values over time with the least-squares line ->
    uint8 RGB [H, W, 3]; panels with nothing to draw say why."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(width_px / 100, 2.0 * len(DRIFT_PANELS)), dpi=100, layout="constrained")
    FigureCanvasAgg(figure)
    axes = figure.subplots(len(DRIFT_PANELS), 1, sharex=True)
    seconds = [s["drift"]["window_seconds"] for s in summaries.values() if "drift" in s]
    longest = max([w["start_s"] for s in summaries.values() if "drift" in s
                   for entry in s["drift"]["metrics"].values() for w in entry.get("windows", [])], default=0)
    unit, scale = ("min", 60.0) if longest >= 120 else ("s", 1.0)  # minutes for long dubs, seconds for short ones
    for axis, (metric, title, label) in zip(axes, DRIFT_PANELS):
        window = f" ({seconds[0]:g} s)" if seconds else ""
        axis.set_title(title.replace("per window", f"per window{window}"), fontsize=10, loc="left")
        axis.set_ylabel(label, fontsize=8)
        axis.ticklabel_format(axis="y", useOffset=False)  # values as they are, not as offsets from 0.9999
        reasons = set()
        drawn = False
        for name, summary in summaries.items():
            entry = summary.get("drift", {}).get("metrics", {}).get(metric, {"why": "no drift scored"})
            windows = entry.get("windows", [])
            if not entry.get("computed"):
                reasons.add(entry["why"])
            if not windows:
                continue
            starts = np.array([w["start_s"] for w in windows])
            values = np.array([w["value"] for w in windows])
            middles = (starts + summary["drift"]["window_seconds"] / 2) / scale
            legend = f"{name}: {entry['slope_per_minute']:+.3g} per minute" if entry.get("computed") else name
            line = axis.plot(middles, values, marker="o", markersize=3, linewidth=1.2, label=legend)[0]
            if entry.get("computed") and len(windows) > 1:  # the fitted line, through the weighted means
                weights = np.array([w["frames"] for w in windows], np.float64)
                centre_t, centre_v = np.average(middles, weights=weights), np.average(values, weights=weights)
                slope = entry["slope_per_minute"] * scale / 60
                axis.plot(middles, centre_v + slope * (middles - centre_t), linestyle="--", linewidth=1,
                          color=line.get_color())
            drawn = True
        if drawn:
            axis.legend(fontsize=8, loc="best")  # a falling line would hide under a legend at the lower right
        if reasons and not drawn:
            axis.text(0.5, 0.5, "not computed: " + "; ".join(sorted(reasons)), ha="center", va="center",
                      transform=axis.transAxes, fontsize=9, color="0.4", wrap=True)
        axis.grid(alpha=0.3)
    axes[-1].set_xlabel(f"time ({unit}, window middle)")
    figure.canvas.draw()
    return np.asarray(figure.canvas.buffer_rgba())[:, :, :3].copy()


SORT_AS_GIVEN = "as given"
HIGHER_IS_BETTER = ("lse_c", "identity_cosine", "ssim", "psnr", "ssim_mouth", "psnr_mouth")
LOWER_IS_BETTER = ("lse_d", "lmd_px", "lpips_mouth", "mouth_opening_in_silence")
NEAREST_ZERO_IS_BETTER = ("av_offset_frames",)  # audio and lips in step: offset 0
SORT_CHOICES = (SORT_AS_GIVEN, "lse_c", "lse_d", "av_offset_frames", "identity_cosine", "ssim", "psnr", "ssim_mouth",
                "psnr_mouth", "lmd_px", "lpips_mouth", "mouth_opening_in_silence")  # the summary table's order


def sort_versions(summaries: dict, metric: str = SORT_AS_GIVEN) -> dict:
    """The summaries best first by `metric` (its direction: higher, lower or nearest 0 is better); versions where
    it was not computed go last, in the order given; "as given" keeps the order."""
    if metric == SORT_AS_GIVEN:
        return dict(summaries)
    if metric not in SORT_CHOICES:
        raise SettingError(f"cannot sort by {metric!r}; choose one of {', '.join(SORT_CHOICES)}")

    def badness(item):
        entry = item[1]["metrics"].get(metric, {})
        value = entry.get("value")
        if not entry.get("computed") or not isinstance(value, (int, float)) or np.isnan(value):
            return (1, 0.0)
        if metric in HIGHER_IS_BETTER:
            return (0, -value)
        return (0, abs(value) if metric in NEAREST_ZERO_IS_BETTER else value)

    return dict(sorted(summaries.items(), key=badness))  # sorted is stable: ties keep the order given


def summary_table(summaries: dict) -> str:
    """A plain-text table: one row per metric, one column per scored dub."""
    names = []
    for summary in summaries.values():
        names += [name for name in summary["metrics"] if name not in names]
    rows = [["metric", *summaries]]
    for name in names:
        cells = []
        for summary in summaries.values():
            entry = summary["metrics"].get(name, {"computed": False, "why": "-"})
            value = entry.get("value")
            cells.append(f"{value:.4f}" if entry["computed"] and isinstance(value, float) else
                         str(value) if entry["computed"] else "n/a")
        rows.append([name, *cells])
    rows += _drift_rows(summaries)
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(cell.ljust(width) for cell, width in zip(row, widths)) for row in rows)


def _drift_rows(summaries: dict) -> list[list[str]]:
    """One row per drift metric: its slope per minute in each dub (n/a where it could not be fitted)."""
    names = []
    for summary in summaries.values():
        names += [name for name in summary.get("drift", {}).get("metrics", {}) if name not in names]
    rows = []
    for name in names:
        cells = []
        for summary in summaries.values():
            entry = summary.get("drift", {}).get("metrics", {}).get(name, {})
            cells.append(f"{entry['slope_per_minute']:+.4f}" if entry.get("computed") else "n/a")
        rows.append([f"{name} drift per minute", *cells])
    return rows
