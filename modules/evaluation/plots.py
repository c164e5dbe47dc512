"""Per-frame curves of one or more scored dubs, drawn with matplotlib into an RGB image (no window, no pyplot
state: a Figure with its own Agg canvas, so nothing process-wide changes)."""

import numpy as np

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
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(cell.ljust(width) for cell, width in zip(row, widths)) for row in rows)
