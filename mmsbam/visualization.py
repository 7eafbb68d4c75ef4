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
from typing import TYPE_CHECKING, Dict, NamedTuple, Optional, Sequence, Union

import numpy as np
import torch

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

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


class _Inputs(NamedTuple):
    """Validated inputs of :func:`draw_masking_figure` as numpy arrays."""
    images: np.ndarray  # (N, H, W, 3) uint8
    salience: np.ndarray  # (N, L) float64
    masks: 'OrderedDict[str, np.ndarray]'  # name -> (N, L) float64
    reconstructions: Optional[np.ndarray]  # (N, H, W, 3) uint8
    ratios: Dict[str, np.ndarray]  # name -> (N, ) float64


def _validate_inputs(images: ArrayLike, salience: ArrayLike,
                     masks: Optional[Dict[str, ArrayLike]],
                     reconstructions: Optional[ArrayLike],
                     ratios: Optional[Dict[str, Sequence[float]]],
                     row_labels: Optional[Sequence[str]]) -> _Inputs:
    """Check the arguments of :func:`draw_masking_figure` (see there)
    against each other and convert them to numpy arrays.

    Raises:
        ValueError: If a shape does not match the images or the number of
            patches does not form a square grid.
    """
    imgs = _as_images(images, 'images')
    N = imgs.shape[0]
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
    return _Inputs(imgs, sal, mask_arrays, recon, ratio_arrays)


def _upscale_inputs(data: _Inputs) -> _Inputs:
    """Enlarge images and reconstructions by the images' upscale factor."""
    factor = _upscale_factor(*data.images.shape[1:3])
    recon = data.reconstructions
    return data._replace(
        images=_upscale(data.images, factor),
        reconstructions=None if recon is None else _upscale(recon, factor))


class _Layout(NamedTuple):
    """Sizes of the figure and of its parts, in inches."""
    n_cols: int
    panel_w: float
    panel_h: float
    label_h: float  # room for the panel labels above each panel
    top_h: float  # room for the title
    left_w: float  # room for the row labels
    fig_w: float
    fig_h: float


def _make_layout(n_rows: int, n_cols: int, aspect: float, title: str,
                 has_row_labels: bool) -> _Layout:
    """Size a grid of panels with labels, a title and a colour bar strip.

    Args:
        n_rows (int): Number of images.
        n_cols (int): Number of panels per image.
        aspect (float): Height / width of the (upscaled) images.
        title (str): The figure title; each of its lines gets room.
        has_row_labels (bool): Whether to leave room for row labels.

    Returns:
        _Layout: The sizes in inches.
    """
    panel_w = PANEL_INCHES
    panel_h = PANEL_INCHES * aspect
    label_h = 0.5  # three lines of panel label
    title_lines = title.count('\n') + 1 if title else 0
    top_h = 0.25 + 0.22 * title_lines
    cbar_h = 0.55
    left_w = 0.35 if has_row_labels else 0.1
    fig_w = left_w + n_cols * panel_w + 0.1
    fig_h = top_h + n_rows * (panel_h + label_h) + cbar_h
    return _Layout(n_cols, panel_w, panel_h, label_h, top_h, left_w, fig_w,
                   fig_h)


def _panel_axes(fig: 'Figure', lay: _Layout, row: int, col: int) -> 'Axes':
    """Axes of the panel in ``row``, ``col``: no ticks, thin grey frame."""
    x0 = (lay.left_w + col * lay.panel_w + 0.04) / lay.fig_w
    y_top = lay.fig_h - lay.top_h - row * (lay.panel_h + lay.label_h) - \
        lay.label_h
    y0 = (y_top - lay.panel_h + 0.04) / lay.fig_h
    ax = fig.add_axes((x0, y0, (lay.panel_w - 0.08) / lay.fig_w,
                       (lay.panel_h - 0.08) / lay.fig_h))
    ax.set_xticks([])
    ax.set_yticks([])
    for spine in ax.spines.values():
        spine.set_linewidth(0.5)
        spine.set_color('#888888')
    return ax


def _draw_mask_panel(ax: 'Axes', image: np.ndarray, mask: np.ndarray,
                     salience: np.ndarray, name: str,
                     ratio: Optional[float]) -> None:
    """The image with veiled, outlined masked patches and a 3-line label.

    Args:
        ax (Axes): The panel.
        image (np.ndarray): (H, W, 3) uint8, already upscaled.
        mask (np.ndarray): (L, ) mask of the image, 1 = masked.
        salience (np.ndarray): (L, ) salience of the image.
        name (str): Column name.
        ratio (float, optional): Ratio to show; None for the masked
            fraction of ``mask``.
    """
    from matplotlib.collections import LineCollection
    H, W = image.shape[:2]
    ax.imshow(_masked_panel(image, mask), interpolation='nearest')
    segs = _mask_edges(mask, H, W)
    if len(segs):
        ax.add_collection(
            LineCollection(segs, colors=EDGE_COLOR, linewidths=0.6,
                           alpha=0.9))
    ax.set_xlim(-0.5, W - 0.5)
    ax.set_ylim(H - 0.5, -0.5)
    hidden = mask > 0.5
    n_masked, L = int(hidden.sum()), mask.shape[0]
    r = n_masked / L if ratio is None else ratio
    s_in = salience[hidden].mean() if hidden.any() else float('nan')
    s_out = salience[~hidden].mean() if (~hidden).any() else float('nan')
    ax.set_title(f'{name}  r={r:.2f}\n{n_masked}/{L} masked\n'
                 f'mean ŝ masked {s_in:.2f}, visible {s_out:.2f}',
                 fontsize=7, linespacing=1.1)


def _draw_row(fig: 'Figure', lay: _Layout, data: _Inputs, row: int,
              row_label: Optional[str], reconstruction_title: str) -> None:
    """One image's panels: image, salience, masks, reconstruction.

    Args:
        fig (Figure): The figure.
        lay (_Layout): Where the panels go.
        data (_Inputs): Validated, upscaled inputs.
        row (int): Index of the image.
        row_label (str, optional): Name of the image, left of the row.
        reconstruction_title (str): Label of the reconstruction column.
    """
    image, sal, first = data.images[row], data.salience[row], row == 0
    ax = _panel_axes(fig, lay, row, 0)
    ax.imshow(image, interpolation='nearest')
    ax.set_title('image' if first else '', fontsize=8)
    if row_label is not None:
        ax.set_ylabel(str(row_label), fontsize=8)

    ax = _panel_axes(fig, lay, row, 1)
    ax.imshow(_heat_panel(image, sal), interpolation='nearest')
    label = f'median {np.median(sal):.2f}, {(sal > 0.5).mean():.0%} > 0.5'
    ax.set_title(('salience ŝ\n' if first else '') + label, fontsize=8)
    for col, (name, masks) in enumerate(data.masks.items(), start=2):
        ratio = data.ratios[name][row] if name in data.ratios else None
        _draw_mask_panel(_panel_axes(fig, lay, row, col), image, masks[row],
                         sal, name, ratio)
    if data.reconstructions is not None:
        ax = _panel_axes(fig, lay, row, lay.n_cols - 1)
        ax.imshow(data.reconstructions[row], interpolation='nearest')
        ax.set_title(reconstruction_title if first else '', fontsize=8)


def _draw_annotations(fig: 'Figure', lay: _Layout, with_legend: bool,
                      title: str) -> None:
    """The salience colour bar, the mask legend and the title.

    Args:
        fig (Figure): The figure.
        lay (_Layout): Where the panels are.
        with_legend (bool): Whether to explain the mask panels (under the
            mask columns).
        title (str): Title on top; none if empty.
    """
    from matplotlib import colormaps
    from matplotlib.cm import ScalarMappable
    from matplotlib.colors import Normalize

    # one colour bar for the salience column, under its last panel
    x0 = (lay.left_w + lay.panel_w + 0.2) / lay.fig_w
    cax = fig.add_axes((x0, 0.28 / lay.fig_h,
                        (lay.panel_w - 0.4) / lay.fig_w, 0.1 / lay.fig_h))
    cbar = fig.colorbar(
        ScalarMappable(norm=Normalize(0, 1), cmap=colormaps[CMAP]),
        cax=cax, orientation='horizontal', ticks=[0, 0.5, 1])
    cbar.ax.tick_params(labelsize=7, length=2, pad=1)
    cbar.set_label('normalised salience ŝ', fontsize=7, labelpad=1)
    if with_legend:
        room = lay.fig_w - (lay.left_w + 2 * lay.panel_w + 0.1)
        legend = textwrap.fill(
            'blue-grey patches outlined in cyan = masked (hidden from '
            'the encoder); r = masking ratio of the image; mean ŝ = mean '
            'salience of its masked and visible patches',
            max(20, int(room * 15)))
        fig.text((lay.left_w + 2 * lay.panel_w + 0.05) / lay.fig_w,
                 0.45 / lay.fig_h, legend, fontsize=7, color='#333333',
                 va='top')
    if title:
        fig.text(0.5, 1 - 0.12 / lay.fig_h, title, ha='center', va='top',
                 fontsize=9, wrap=False)


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
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    data = _upscale_inputs(
        _validate_inputs(images, salience, masks, reconstructions, ratios,
                         row_labels))
    N, H, W = data.images.shape[:3]
    n_cols = 2 + len(data.masks) + (data.reconstructions is not None)
    lay = _make_layout(N, n_cols, H / W, title, row_labels is not None)
    fig = Figure(figsize=(lay.fig_w, lay.fig_h), dpi=DPI, facecolor='white')
    FigureCanvasAgg(fig)
    for i in range(N):
        _draw_row(fig, lay, data, i,
                  None if row_labels is None else row_labels[i],
                  reconstruction_title)
    _draw_annotations(fig, lay, bool(data.masks), title)
    fig.canvas.draw()
    rgba = np.asarray(fig.canvas.buffer_rgba())
    return rgba[..., :3].copy()
