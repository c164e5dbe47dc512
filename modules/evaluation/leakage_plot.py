"""The leakage section drawn per frame (as plots.py draws: a Figure with its own Agg canvas, nothing process-wide):
the mouth opening of each re-dub beside the original's, the open/closed threshold, the silent frames shaded."""

import numpy as np

from .leakage import ALTERNATIVE, CURRENT, SILENT

PANELS = (  # (title, curves drawn, which silence is shaded)
    ("Silent driving audio (all frames silent): does the mouth still move?", (SILENT,), SILENT),
    ("Mismatched driving audio (grey: its silent frames): current vs alternative reference", (CURRENT, ALTERNATIVE),
     "mismatched_silent"),
)
LABELS = {SILENT: "dub, silent audio", CURRENT: "dub, current reference (CR)",
          ALTERNATIVE: "dub, alternative reference (AR)", "original": "original"}
METRIC_OF = {SILENT: "lipleak", CURRENT: "lsd_cr", ALTERNATIVE: "lsd_ar"}


def _series(values) -> np.ndarray:
    return np.array([np.nan if v is None else v for v in values], np.float64)


def plot_leakage(leakage: dict, width_px: int = 1200) -> np.ndarray:
    """leakage: leakage.leakage_summary(...) -> uint8 RGB [H, W, 3]; a panel with no curve says why."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(width_px / 100, 2.4 * len(PANELS)), dpi=100, layout="constrained")
    FigureCanvasAgg(figure)
    axes = figure.subplots(len(PANELS), 1, sharex=True)
    curves, metrics, threshold = leakage["per_frame"], leakage["metrics"], leakage["threshold"]
    for axis, (title, names, shaded) in zip(axes, PANELS):
        axis.set_title(title, fontsize=10, loc="left")
        axis.set_ylabel("gap / face height", fontsize=8)
        drawn = [name for name in names if name in curves]
        if not drawn:
            reasons = sorted({metrics[METRIC_OF[name]].get("why", "not run") for name in names})
            axis.text(0.5, 0.5, "not computed: " + "; ".join(reasons), ha="center", va="center",
                      transform=axis.transAxes, fontsize=9, color="0.4", wrap=True)
            continue
        silent = [True] * len(curves[drawn[0]]) if shaded == SILENT else curves.get(shaded, [])
        if any(silent):
            axis.fill_between(np.arange(len(silent)), 0, 1, where=silent, color="0.88", step="mid",
                              transform=axis.get_xaxis_transform(), zorder=0)
        if "original" in curves:
            axis.plot(_series(curves["original"]), color="0.45", linewidth=1, linestyle=":", label=LABELS["original"])
        for name in drawn:
            entry = metrics[METRIC_OF[name]]
            value = f" ({METRIC_OF[name]} {entry['value']:.3f})" if entry["computed"] else ""
            axis.plot(_series(curves[name]), linewidth=1.3, label=LABELS[name] + value)
        axis.axhline(threshold["value"], color="tab:red", linestyle="--", linewidth=1,
                     label=f"open above {threshold['value']:.3f} ({threshold['rule']})")
        axis.legend(fontsize=8, loc="upper right")
        axis.grid(alpha=0.3)
    axes[-1].set_xlabel("frame")
    figure.canvas.draw()
    return np.asarray(figure.canvas.buffer_rgba())[:, :, :3].copy()
