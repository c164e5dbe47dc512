"""A picture of lip motion over time: the mouth opening (inner-lip gap) and the chin's height, one line per motion
given, so predicted and true motion (or two styles) can be compared at a glance."""

import numpy as np

from .lip_motion import CHIN


def plot_motion(motions: dict, fps: float, title: str = "Lip motion", width_px: int = 900) -> np.ndarray:
    """motions: label -> absolute normalised shapes [T, 29, 2] -> uint8 RGB [H, W, 3]."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    from .lip_motion import mouth_opening

    figure = Figure(figsize=(width_px / 100, width_px / 180), dpi=100)
    FigureCanvasAgg(figure)
    opening_axes, chin_axes = figure.subplots(2, 1, sharex=True)
    for index, (label, shapes) in enumerate(motions.items()):
        seconds = np.arange(len(shapes)) / fps
        opening_axes.plot(seconds, mouth_opening(shapes), color=f"C{index}", label=label, linewidth=1.5)
        chin_axes.plot(seconds, shapes[:, CHIN, 1], color=f"C{index}", linewidth=1.5)
    opening_axes.set_ylabel("mouth opening\n(eye distances)")
    chin_axes.set_ylabel("chin height\n(eye distances)")
    chin_axes.invert_yaxis()  # image y grows downwards; up on the plot is up on the face
    chin_axes.set_xlabel("seconds")
    for axes in (opening_axes, chin_axes):
        axes.grid(alpha=0.3)
    opening_axes.legend(fontsize=8, loc="upper right")
    opening_axes.set_title(title)
    figure.tight_layout()
    figure.canvas.draw()
    return np.asarray(figure.canvas.buffer_rgba())[..., :3].copy()
