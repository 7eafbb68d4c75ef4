"""Statistics of the masking-cost benchmark: step-time quantiles and
ratios to stock MAE, peak memory, the cost of the masking alone, and the
AMR ratios and padding of the recorded train steps."""
import statistics
from typing import Any, Dict, List, Optional, Tuple

import torch
from torch import Tensor

from ...models.grouped_encoding import visible_groups
from .measure import Measurements, Peak
from .variants import VARIANTS

__all__ = [
    'quantiles', 'variant_statistics', 'cost_alone_statistics',
    'amr_statistics', 'summarize'
]


def quantiles(values: List[float]) -> Tuple[float, float, float]:
    """(q25, median, q75) with linear interpolation."""
    if len(values) == 1:
        return values[0], values[0], values[0]
    q = statistics.quantiles(values, n=4, method='inclusive')
    return q[0], q[1], q[2]


def variant_statistics(times: Dict[str, List[float]],
                       peaks: Dict[str, List[Peak]]) -> Dict[str, dict]:
    """Per variant: step-time quantiles, the ratio of its median to stock
    MAE's, the median of the per-round paired ratios, and peak memory.

    Args:
        times (dict): Step seconds per variant, ``'MAE'`` among them.
        peaks (dict): (absolute, above resident) peak bytes per variant.

    Returns:
        dict: ``{variant: statistics}``, in the order of :data:`VARIANTS`.
    """
    stats: Dict[str, Dict[str, Any]] = {}
    _, stock_med, _ = quantiles(times['MAE'])
    for name in VARIANTS:
        q25, med, q75 = quantiles(times[name])
        paired = [a / b for a, b in zip(times[name], times['MAE'])]
        to_batch = [a / b for a, b in zip(times[name], times['AMR-batch'])]
        abs_peaks = [p[0] for p in peaks[name] if p[0] is not None]
        rel_peaks = [p[1] for p in peaks[name] if p[1] is not None]
        stats[name] = dict(
            median_s=med,
            q25_s=q25,
            q75_s=q75,
            iqr_s=q75 - q25,
            ratio_to_mae=med / stock_med,
            paired_ratio_median=statistics.median(paired),
            paired_ratio_to_amr_batch=statistics.median(to_batch),
            peak_mem_bytes=max(abs_peaks) if abs_peaks else None,
            step_peak_above_resident_bytes=max(rel_peaks)
            if rel_peaks else None,
            times_s=times[name])
    return stats


def cost_alone_statistics(cost_alone: Dict[str, List[float]],
                          stock_median_s: float) -> Dict[str, dict]:
    """Per op: time quantiles and the median as a fraction of the median
    stock MAE step."""
    out = {}
    for op_name, values in cost_alone.items():
        q25, med, q75 = quantiles(values)
        out[op_name] = dict(
            median_s=med,
            q25_s=q25,
            q75_s=q75,
            fraction_of_mae_step=med / stock_median_s)
    return out


def amr_statistics(records: List[Tuple[Tensor, Tensor]],
                   stock_keep: int,
                   encoder_groups: int = 1) -> Dict[str, Any]:
    """Masking ratios, visible tokens and padding of AMR train steps.

    Args:
        records (list): ``(num_visible, ratio)`` of each step, both (B,).
        stock_keep (int): Stock MAE's visible tokens per image.
        encoder_groups (int): The variant's ``SBAMViT.encoder_groups``, for
            the padding of its grouped encoding (``grouped_padding_*``).

    Returns:
        dict: Ratio range and mean, the mean within-batch ratio range,
        visible-token range and mean, the mean encoder length ``K_max``
        against ``stock_keep``, and the padding waste
        ``1 - sum(num_visible) / (B * K_max)``: pooled, mean and max over
        steps.
    """
    nv = [v.cpu().long() for v, _ in records]
    ratios = torch.cat([
        r.float().cpu().reshape(-1).expand(v.numel())
        for v, r in zip(nv, (r for _, r in records))
    ])
    k_max = torch.tensor([int(v.max()) for v in nv], dtype=torch.float64)
    visible = torch.tensor([int(v.sum()) for v in nv], dtype=torch.float64)
    slots = torch.tensor([v.numel() for v in nv],
                         dtype=torch.float64) * k_max
    per_step_waste = 1 - visible / slots
    grouped = torch.tensor([
        sum(len(g.index) * g.max_visible
            for g in visible_groups(v, encoder_groups)) for v in nv
    ], dtype=torch.float64)
    all_nv = torch.cat(nv).double()
    return dict(
        steps=len(nv),
        ratio_min=float(ratios.min()),
        ratio_max=float(ratios.max()),
        ratio_mean=float(ratios.mean()),
        mean_within_batch_ratio_range=float(
            statistics.mean(float(r.max() - r.min()) for _, r in records)),
        num_visible_min=int(all_nv.min()),
        num_visible_max=int(all_nv.max()),
        num_visible_mean=float(all_nv.mean()),
        k_max_mean=float(k_max.mean()),
        stock_len_keep=stock_keep,
        encoder_slots_vs_stock=float(k_max.mean() / stock_keep),
        padding_waste_pooled=float(1 - visible.sum() / slots.sum()),
        padding_waste_mean=float(per_step_waste.mean()),
        padding_waste_max=float(per_step_waste.max()),
        encoder_groups=encoder_groups,
        grouped_padding_pooled=float(1 - visible.sum() / grouped.sum()))


def summarize(measured: Measurements, num_tokens: int,
              mask_ratio: float,
              encoder_groups: Optional[Dict[str, int]] = None
              ) -> Dict[str, Any]:
    """Every statistic of the report.

    Args:
        measured (Measurements): From :func:`run_rounds`.
        num_tokens (int): Patch tokens per image, ``L``.
        mask_ratio (float): Stock MAE's masking ratio.
        encoder_groups (dict, optional): ``SBAMViT.encoder_groups`` per AMR
            variant (1 where missing).

    Returns:
        dict: ``num_tokens`` (L), ``mask_ratio``, ``stock_len_keep``,
        ``variants``, ``cost_alone`` and ``amr`` (the AMR variants with
        recorded steps).
    """
    variants = variant_statistics(measured.times, measured.peaks)
    stock_keep = int(num_tokens * (1 - mask_ratio))
    return dict(
        num_tokens=num_tokens,
        mask_ratio=mask_ratio,
        stock_len_keep=stock_keep,
        variants=variants,
        cost_alone=cost_alone_statistics(measured.cost_alone,
                                         variants['MAE']['median_s']),
        amr={
            name: amr_statistics(records, stock_keep,
                                 (encoder_groups or {}).get(name, 1))
            for name, records in measured.amr_records.items() if records
        })
