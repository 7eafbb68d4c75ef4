"""Pictures of SBAM masks: images, salience heat maps, masks, reconstructions.

Everything is drawn with :class:`matplotlib.figure.Figure` on an explicit
``FigureCanvasAgg``, never through ``pyplot``, so a user's (or a notebook's)
global matplotlib backend is left untouched and no display is needed.

Two public functions:

* :func:`denormalize` turns a normalised batch ``(N, C, H, W)`` (what an
  MMPretrain data preprocessor produces) back into ``(N, H, W, 3)`` uint8.
* :func:`draw_masking_figure` draws one row per image: the image, its
  salience heat map, one column per mask and optionally a reconstruction,
  and returns the picture as an ``(H', W', 3)`` uint8 array (write it with
  ``PIL.Image.fromarray(...).save(...)`` or log it to a visualiser).
"""
import textwrap
from collections import OrderedDict
from typing import Dict, Optional, Sequence, Union

import numpy as np
import torch

__all__ = ['denormalize', 'draw_masking_figure']

ArrayLike = Union[np.ndarray, torch.Tensor]

#: Inches per panel and resolution: 2.2 in x 100 dpi = 220 px per panel.
PANEL_INCHES = 2.2
DPI = 100
#: Images smaller than this (pixels, shorter side) are upscaled with
#: nearest-neighbour by an integer factor so that patches stay visible.
MIN_DISPLAY_SIZE = 200
#: Appearance of masked patches: ``image * MASK_KEEP + MASK_GREY * (1 -
#: MASK_KEEP)`` (a blue-grey veil, distinct from both black and white
#: backgrounds, content faintly visible so that one can see *what* was
#: hidden), outlined by a thin line of ``EDGE_COLOR``.
MASK_KEEP = 0.22
MASK_GREY = np.array([100.0, 110.0, 150.0])
EDGE_COLOR = '#00e5ff'
#: Salience heat map: opacity of the colour map over the faded image.
HEAT_ALPHA = 0.6
CMAP = 'inferno'


def _to_numpy(x: ArrayLike) -> np.ndarray:
    """Detach, move to CPU and convert a tensor (any float dtype) to numpy."""
    if isinstance(x, torch.Tensor):
        x = x.detach().cpu()
        if x.is_floating_point():
            x = x.float()
        return x.numpy()
    return np.asarray(x)


def denormalize(inputs: torch.Tensor, mean: Sequence[float],
                std: Sequence[float]) -> np.ndarray:
    """Undo a data preprocessor's normalisation.

    Args:
        inputs (torch.Tensor): Normalised images (N, C, H, W), i.e.
            ``(pixel - mean) / std``. A numpy array is accepted too.
        mean (Sequence[float]): Per-channel mean on the 0..255 scale (the
            ``mean`` of MMPretrain's data preprocessor). One value is used
            for every channel.
        std (Sequence[float]): Per-channel std on the same scale.

    Returns:
        np.ndarray: (N, H, W, 3) uint8; one channel is repeated to RGB.
    """
    x = torch.as_tensor(_to_numpy(inputs)).double()
    if x.dim() != 4:
        raise ValueError(f'inputs must be (N, C, H, W), got {tuple(x.shape)}')
    C = x.shape[1]
    mean_t = torch.as_tensor(list(mean), dtype=torch.float64).flatten()
    std_t = torch.as_tensor(list(std), dtype=torch.float64).flatten()
    for name, t in (('mean', mean_t), ('std', std_t)):
        if t.numel() not in (1, C):
            raise ValueError(f'{name} has {t.numel()} values for {C} '
                             'channels')
    x = x * std_t.view(1, -1, 1, 1) + mean_t.view(1, -1, 1, 1)
    x = x.round().clamp(0, 255).to(torch.uint8)
    if C == 1:
        x = x.expand(-1, 3, -1, -1)
    elif C != 3:
        raise ValueError(f'inputs must have 1 or 3 channels, got {C}')
    return x.permute(0, 2, 3, 1).contiguous().numpy()


def _grid_side(num_tokens: int) -> int:
    side = int(round(num_tokens**0.5))
    if side * side != num_tokens:
        raise ValueError(f'{num_tokens} patches do not form a square grid')
    return side


def _upscale_factor(height: int, width: int) -> int:
    """Integer nearest-neighbour factor for tiny images (28 px -> 8x)."""
    return max(1, int(np.ceil(MIN_DISPLAY_SIZE / max(1, min(height, width)))))


def _patch_map(values: np.ndarray, height: int, width: int) -> np.ndarray:
    """Per-patch values (h*w,) -> per-pixel (height, width), nearest.

    Works for image sizes that are not multiples of the grid side too.
    """
    side = _grid_side(values.shape[0])
    grid = values.reshape(side, side)
    rows = np.arange(height) * side // height
    cols = np.arange(width) * side // width
    return grid[rows[:, None], cols[None, :]]


def _mask_edges(mask: np.ndarray, height: int, width: int) -> np.ndarray:
    """Segments (S, 2, 2) in pixel coordinates between masked and visible
    patches (and masked patches and the image border)."""
    side = _grid_side(mask.shape[0])
    m = np.pad(mask.reshape(side, side) > 0.5, 1, constant_values=False)
    ys = np.round(np.arange(side + 1) * height / side) - 0.5
    xs = np.round(np.arange(side + 1) * width / side) - 0.5
    segs = []
    # horizontal edges: between row i-1 and row i of the padded grid
    diff_h = m[1:, 1:-1] != m[:-1, 1:-1]  # (side + 1, side)
    for i, j in zip(*np.nonzero(diff_h)):
        segs.append(((xs[j], ys[i]), (xs[j + 1], ys[i])))
    diff_v = m[1:-1, 1:] != m[1:-1, :-1]  # (side, side + 1)
    for i, j in zip(*np.nonzero(diff_v)):
        segs.append(((xs[j], ys[i]), (xs[j], ys[i + 1])))
    return np.asarray(segs, dtype=np.float64).reshape(-1, 2, 2)


def _heat_panel(image: np.ndarray, salience: np.ndarray) -> np.ndarray:
    """Colour-mapped salience over a faded grey copy of the image."""
    from matplotlib import colormaps
    H, W = image.shape[:2]
    grey = image.astype(np.float64).mean(-1, keepdims=True)
    faded = 0.6 * grey + 0.4 * 255.0
    heat = colormaps[CMAP](np.clip(_patch_map(salience, H, W), 0, 1))[..., :3]
    out = (1 - HEAT_ALPHA) * faded + HEAT_ALPHA * 255.0 * heat
    return out.round().clip(0, 255).astype(np.uint8)


def _masked_panel(image: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """The image with masked patches veiled in blue-grey."""
    H, W = image.shape[:2]
    m = _patch_map(mask, H, W)[..., None] > 0.5
    dark = MASK_KEEP * image.astype(np.float64) + (1 - MASK_KEEP) * MASK_GREY
    out = np.where(m, dark, image.astype(np.float64))
    return out.round().clip(0, 255).astype(np.uint8)


def _as_images(images: ArrayLike, name: str) -> np.ndarray:
    imgs = _to_numpy(images)
    if imgs.ndim == 3:  # (N, H, W) grey
        imgs = np.repeat(imgs[..., None], 3, axis=-1)
    if imgs.ndim != 4 or imgs.shape[-1] not in (1, 3):
        raise ValueError(f'{name} must be (N, H, W, 3) uint8, got '
                         f'{imgs.shape}')
    if imgs.shape[-1] == 1:
        imgs = np.repeat(imgs, 3, axis=-1)
    if imgs.dtype != np.uint8:
        imgs = np.clip(np.round(imgs.astype(np.float64)), 0,
                       255).astype(np.uint8)
    return imgs


def _upscale(imgs: np.ndarray, factor: int) -> np.ndarray:
    if factor == 1:
        return imgs
    return imgs.repeat(factor, axis=1).repeat(factor, axis=2)


def draw_masking_figure(images: np.ndarray,
                        salience: Union[np.ndarray, torch.Tensor],
                        masks: 'OrderedDict[str, Union[np.ndarray, torch.Tensor]]',  # noqa: E501
                        reconstructions: Optional[np.ndarray] = None,
                        ratios: Optional[Dict[str, Sequence[float]]] = None,
                        title: str = '',
                        *,
                        row_labels: Optional[Sequence[str]] = None,
                        reconstruction_title: str = 'reconstruction'
                        ) -> np.ndarray:
    """Draw images, salience and masks side by side, one row per image.

    Columns: the image; its salience as a heat map (``'inferno'``, 0 black
    to 1 yellow, colour bar under the column) over a faded grey copy of the
    image, labelled with its median; one column per entry of ``masks``
    (masked patches veiled in blue-grey and outlined in cyan), each panel
    labelled with the column name, the ratio, the masked count and the mean
    salience of the masked and of the visible patches; the reconstruction
    if given.
    Images smaller than 200 px are enlarged with nearest-neighbour so that
    their patches stay visible.

    Args:
        images (np.ndarray): (N, H, W, 3) uint8 (e.g. from
            :func:`denormalize`).
        salience (np.ndarray | torch.Tensor): (N, L) in [0, 1], ``L = h*w``
            patches on a square grid.
        masks (OrderedDict[str, np.ndarray | torch.Tensor]): Column name ->
            (N, L) mask, 1 = masked (MMPretrain's convention).
        reconstructions (np.ndarray, optional): (N, H, W, 3) uint8, shown
            as the last column.
        ratios (dict[str, Sequence[float]], optional): Column name ->
            per-image masking ratio shown in the labels (e.g. AMR's
            ``r_b``); columns without one show the masked fraction of the
            mask itself.
        title (str): Title on top of the figure.
        row_labels (Sequence[str], optional): One name per image, shown on
            the left of each row.
        reconstruction_title (str): Label of the reconstruction column.

    Returns:
        np.ndarray: The picture, (H', W', 3) uint8 RGB.
    """
    from matplotlib import colormaps
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.cm import ScalarMappable
    from matplotlib.collections import LineCollection
    from matplotlib.colors import Normalize
    from matplotlib.figure import Figure

    imgs = _as_images(images, 'images')
    N, H, W = imgs.shape[:3]
    sal = _to_numpy(salience).astype(np.float64)
    if sal.ndim != 2 or sal.shape[0] != N:
        raise ValueError(f'salience must be ({N}, L), got {sal.shape}')
    L = sal.shape[1]
    _grid_side(L)
    mask_arrays = OrderedDict()
    for name, m in (masks or {}).items():
        arr = _to_numpy(m).astype(np.float64)
        if arr.shape != (N, L):
            raise ValueError(f'mask {name!r} must be ({N}, {L}), got '
                             f'{arr.shape}')
        mask_arrays[name] = arr
    recon = None
    if reconstructions is not None:
        recon = _as_images(reconstructions, 'reconstructions')
        if recon.shape[0] != N:
            raise ValueError(f'{recon.shape[0]} reconstructions for {N} '
                             'images')
    ratio_arrays = {}
    for name, r in (ratios or {}).items():
        arr = _to_numpy(r).astype(np.float64).reshape(-1)
        if arr.size == 1:
            arr = np.repeat(arr, N)
        if arr.shape != (N, ):
            raise ValueError(f'ratios[{name!r}] must have {N} values, got '
                             f'{arr.shape}')
        ratio_arrays[name] = arr
    if row_labels is not None and len(row_labels) != N:
        raise ValueError(f'{len(row_labels)} row labels for {N} images')

    factor = _upscale_factor(H, W)
    big = _upscale(imgs, factor)
    big_recon = None if recon is None else _upscale(recon, factor)
    Hb, Wb = big.shape[1:3]

    n_cols = 2 + len(mask_arrays) + (recon is not None)
    aspect = Hb / Wb
    panel_w = PANEL_INCHES
    panel_h = PANEL_INCHES * aspect
    label_h = 0.5  # room for three lines of panel label above each panel
    title_lines = title.count('\n') + 1 if title else 0
    top_h = 0.25 + 0.22 * title_lines
    cbar_h = 0.55
    left_w = 0.35 if row_labels is not None else 0.1
    fig_w = left_w + n_cols * panel_w + 0.1
    fig_h = top_h + N * (panel_h + label_h) + cbar_h
    fig = Figure(figsize=(fig_w, fig_h), dpi=DPI, facecolor='white')
    FigureCanvasAgg(fig)

    def axes_at(row: int, col: int):
        x0 = (left_w + col * panel_w + 0.04) / fig_w
        y_top = fig_h - top_h - row * (panel_h + label_h) - label_h
        y0 = (y_top - panel_h + 0.04) / fig_h
        ax = fig.add_axes((x0, y0, (panel_w - 0.08) / fig_w,
                           (panel_h - 0.08) / fig_h))
        ax.set_xticks([])
        ax.set_yticks([])
        for spine in ax.spines.values():
            spine.set_linewidth(0.5)
            spine.set_color('#888888')
        return ax

    small = 8
    for i in range(N):
        ax = axes_at(i, 0)
        ax.imshow(big[i], interpolation='nearest')
        ax.set_title('image' if i == 0 else '', fontsize=small)
        if row_labels is not None:
            ax.set_ylabel(str(row_labels[i]), fontsize=small)

        ax = axes_at(i, 1)
        ax.imshow(_heat_panel(big[i], sal[i]), interpolation='nearest')
        s = sal[i]
        label = (f'median {np.median(s):.2f}, '
                 f'{(s > 0.5).mean():.0%} > 0.5')
        ax.set_title(('salience ŝ\n' if i == 0 else '') + label,
                     fontsize=small)
        for col, (name, m) in enumerate(mask_arrays.items(), start=2):
            ax = axes_at(i, col)
            ax.imshow(_masked_panel(big[i], m[i]), interpolation='nearest')
            segs = _mask_edges(m[i], Hb, Wb)
            if len(segs):
                ax.add_collection(
                    LineCollection(segs, colors=EDGE_COLOR, linewidths=0.6,
                                   alpha=0.9))
            ax.set_xlim(-0.5, Wb - 0.5)
            ax.set_ylim(Hb - 0.5, -0.5)
            hidden = m[i] > 0.5
            n_masked = int(hidden.sum())
            r = ratio_arrays[name][i] if name in ratio_arrays else \
                n_masked / L
            s_in = sal[i][hidden].mean() if hidden.any() else float('nan')
            s_out = sal[i][~hidden].mean() if (~hidden).any() else \
                float('nan')
            ax.set_title(f'{name}  r={r:.2f}\n{n_masked}/{L} masked\n'
                         f'mean ŝ masked {s_in:.2f}, visible {s_out:.2f}',
                         fontsize=7, linespacing=1.1)
        if big_recon is not None:
            ax = axes_at(i, n_cols - 1)
            ax.imshow(big_recon[i], interpolation='nearest')
            ax.set_title(reconstruction_title if i == 0 else '',
                         fontsize=small)

    # one colour bar for the salience column, under its last panel
    x0 = (left_w + panel_w + 0.2) / fig_w
    cax = fig.add_axes((x0, 0.28 / fig_h, (panel_w - 0.4) / fig_w,
                        0.1 / fig_h))
    cbar = fig.colorbar(
        ScalarMappable(norm=Normalize(0, 1), cmap=colormaps[CMAP]),
        cax=cax, orientation='horizontal', ticks=[0, 0.5, 1])
    cbar.ax.tick_params(labelsize=7, length=2, pad=1)
    cbar.set_label('normalised salience ŝ', fontsize=7, labelpad=1)
    if mask_arrays:
        room = fig_w - (left_w + 2 * panel_w + 0.1)
        legend = textwrap.fill(
            'blue-grey patches outlined in cyan = masked (hidden from '
            'the encoder); r = masking ratio of the image; mean ŝ = mean '
            'salience of its masked and visible patches',
            max(20, int(room * 15)))
        fig.text((left_w + 2 * panel_w + 0.05) / fig_w, 0.45 / fig_h,
                 legend, fontsize=7, color='#333333', va='top')
    if title:
        fig.text(0.5, 1 - 0.12 / fig_h, title, ha='center', va='top',
                 fontsize=9, wrap=False)
    fig.canvas.draw()
    rgba = np.asarray(fig.canvas.buffer_rgba())
    return rgba[..., :3].copy()
