"""The loss curve of a run: each training term per step (faint) with its moving average, validation as points."""

import numpy as np


def plot_losses(history: list[dict], validation: list[dict], path: str | None = None,
                width_px: int = 1000, title: str = "UnAvgLip identity adapter training") -> np.ndarray:
    """Draw the curves; write a PNG to `path` when given; return the picture as uint8 RGB [H, W, 3]."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(width_px / 100, width_px / 160), dpi=100)
    FigureCanvasAgg(figure)
    axes = figure.add_subplot(1, 1, 1)
    steps = np.array([entry["step"] for entry in history])
    names = [name for name in (history[0] if history else {}) if name not in ("step", "lr", "seconds")]
    for index, name in enumerate(names):
        values = np.array([entry[name] for entry in history], dtype=np.float64)
        colour = f"C{index}"
        axes.plot(steps, values, color=colour, alpha=0.25, linewidth=0.8)
        window = max(1, len(values) // 20)
        smooth = np.convolve(values, np.ones(window) / window, mode="valid")
        few = len(values) < 30  # a short run: mark each step, or a one-step line would not show at all
        axes.plot(steps[window - 1:], smooth, color=colour, linewidth=2, label=f"train {name}",
                  marker="o" if few else None, markersize=4)
    for index, name in enumerate(names):
        points = [(entry["step"], entry[name]) for entry in validation if name in entry]
        if points:
            axes.plot(*zip(*points), "o--", color=f"C{index}", markersize=5, label=f"validation {name}")
    axes.set_xlabel("step")
    if len(steps) and steps.max() < 10:
        axes.set_xticks(range(0, int(steps.max()) + 2))  # whole steps only
    axes.set_ylabel("loss")
    positive = [entry[n] for entry in history for n in names if entry[n] > 0]
    if positive and max(positive) / max(min(positive), 1e-12) > 50:
        axes.set_yscale("log")
    axes.grid(alpha=0.3)
    axes.set_title(title)
    if names:
        axes.legend(fontsize=8, ncol=2)
    figure.tight_layout()
    if path:
        figure.savefig(path)
    figure.canvas.draw()
    return np.asarray(figure.canvas.buffer_rgba())[..., :3].copy()
