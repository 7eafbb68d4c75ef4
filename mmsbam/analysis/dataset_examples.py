"""A picture of a dataset: a few images per class, each with the box of
its object, to check by eye what a (synthetic) dataset looks like."""
from typing import Optional, Sequence

import numpy as np

__all__ = ['examples_per_class', 'draw_examples_grid']

BOX_COLOR = '#00e5ff'
PANEL_INCHES = 1.1
DPI = 100


def examples_per_class(labels: np.ndarray, per_class: int) -> np.ndarray:
    """(num_classes, per_class) indices: the first ``per_class`` images of
    each class present in ``labels``, classes in increasing order."""
    if per_class < 1:
        raise ValueError(f'per_class must be >= 1, got {per_class}')
    rows = []
    for c in np.unique(labels):
        idx = np.flatnonzero(labels == c)[:per_class]
        if len(idx) < per_class:
            raise ValueError(f'class {c} has {len(idx)} images, fewer than '
                             f'per_class={per_class}')
        rows.append(idx)
    return np.stack(rows)


def draw_examples_grid(images: np.ndarray,
                       boxes: Optional[np.ndarray] = None,
                       row_labels: Optional[Sequence[str]] = None,
                       title: str = '') -> np.ndarray:
    """Draw a grid of grey images, optionally outlining one box in each.

    Args:
        images (np.ndarray): (rows, cols, H, W) uint8 grey images.
        boxes (np.ndarray, optional): (rows, cols, 4) ``(x0, y0, x1, y1)``
            with exclusive ends, in pixels.
        row_labels (Sequence[str], optional): One name per row.
        title (str): Title on top.

    Returns:
        np.ndarray: The picture, (H', W', 3) uint8 RGB.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.patches import Rectangle

    if images.ndim != 4:
        raise ValueError('images must be (rows, cols, H, W), got '
                         f'{images.shape}')
    n_rows, n_cols = images.shape[:2]
    left = 1.2 if row_labels is not None else 0.1
    top = 0.5 if title else 0.1
    fig = Figure(figsize=(left + n_cols * PANEL_INCHES,
                          top + n_rows * PANEL_INCHES), dpi=DPI,
                 facecolor='white')
    FigureCanvasAgg(fig)
    width, height = fig.get_size_inches()
    for r in range(n_rows):
        for c in range(n_cols):
            ax = fig.add_axes([
                (left + c * PANEL_INCHES) / width,
                1 - (top + (r + 1) * PANEL_INCHES) / height,
                0.95 * PANEL_INCHES / width, 0.95 * PANEL_INCHES / height
            ])
            ax.imshow(images[r, c], cmap='gray', vmin=0, vmax=255,
                      interpolation='nearest')
            if boxes is not None:
                x0, y0, x1, y1 = boxes[r, c]
                ax.add_patch(Rectangle((x0 - 0.5, y0 - 0.5), x1 - x0,
                                       y1 - y0, fill=False, lw=0.8,
                                       edgecolor=BOX_COLOR))
            ax.set_axis_off()
            if c == 0 and row_labels is not None:
                fig.text(0.05 / width,
                         1 - (top + (r + 0.5) * PANEL_INCHES) / height,
                         row_labels[r], ha='left', va='center', fontsize=9)
    if title:
        fig.text(0.5, 1 - 0.25 / height, title, ha='center', va='center',
                 fontsize=10)
    fig.canvas.draw()
    return np.asarray(fig.canvas.buffer_rgba())[..., :3].copy()
