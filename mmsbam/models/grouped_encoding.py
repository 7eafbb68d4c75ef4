"""Encode images with different visible counts without padding them all to
the batch maximum.

With per-image AMR every image keeps its own number of visible tokens. One
padded batch runs the encoder on ``B x max(K_b)`` slots, and the maximum
of a batch approaches the top of the ratio range as the batch grows. Here
the images are sorted by count and cut into a few sub-batches, each padded
only to its own maximum (the cut points minimise the padded slots, by
dynamic programming over the distinct counts); the stock encoder layers run
once per sub-batch and the results are put back in batch order.
"""
from typing import Callable, List, NamedTuple, Optional

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = ['VisibleGroup', 'visible_groups', 'encode_in_groups']


class VisibleGroup(NamedTuple):
    """Images encoded together: their indices in the batch, the largest
    visible count among them, and whether some have fewer (padding)."""
    index: Tensor
    max_visible: int
    padded: bool


def visible_groups(num_visible: Tensor,
                   max_groups: int) -> List[VisibleGroup]:
    """Split a batch into at most ``max_groups`` groups of images with
    similar visible counts, minimising the padded slots.

    Args:
        num_visible (Tensor): (B,) visible tokens per image.
        max_groups (int): Largest number of groups, >= 1.

    Returns:
        list[VisibleGroup]: In ascending order of count; the indices (long,
        on the device of ``num_visible``) together are a permutation of
        ``range(B)``.
    """
    if isinstance(max_groups, bool) or not isinstance(max_groups, int) or \
            max_groups < 1:
        raise ValueError(f'max_groups must be an integer >= 1, got '
                         f'{max_groups!r}')
    order = torch.argsort(num_visible, stable=True)
    values, counts = torch.unique_consecutive(num_visible[order],
                                              return_counts=True)
    values, counts = values.tolist(), counts.tolist()  # one device sync
    cuts = _best_cuts(values, counts, max_groups)
    groups, start = [], 0
    for end in cuts:
        size = sum(counts[start:end])
        offset = sum(counts[:start])
        groups.append(VisibleGroup(order[offset:offset + size],
                                   values[end - 1], end - start > 1))
        start = end
    return groups


def _best_cuts(values: List[int], counts: List[int],
               max_groups: int) -> List[int]:
    """End indices (exclusive) of the groups of distinct counts that
    minimise ``sum(images * max count)`` with at most ``max_groups``
    groups (``O(max_groups * U^2)`` for ``U`` distinct counts)."""
    U = len(values)
    G = min(max_groups, U)
    prefix = [0]
    for c in counts:
        prefix.append(prefix[-1] + c)
    inf = float('inf')
    # best[g][j]: least slots for the first j distinct counts in g groups
    best = [[inf] * (U + 1) for _ in range(G + 1)]
    back = [[0] * (U + 1) for _ in range(G + 1)]
    best[0][0] = 0
    for g in range(1, G + 1):
        for j in range(1, U + 1):
            for i in range(g - 1, j):
                cost = best[g - 1][i] + (prefix[j] - prefix[i]) * values[j - 1]
                if cost < best[g][j]:
                    best[g][j], back[g][j] = cost, i
    g = min(range(1, G + 1), key=lambda n: (best[n][U], n))
    cuts, j = [], U
    while g > 0:
        cuts.append(j)
        j, g = back[g][j], g - 1
    return cuts[::-1]


def encode_in_groups(x: Tensor, num_visible: Tensor, max_groups: int,
                     encode: Callable[[Tensor, Optional[Tensor]], Tensor]
                     ) -> Tensor:
    """Run ``encode`` on sub-batches of similar visible counts.

    Args:
        x (Tensor): (B, K, D) visible tokens in keep order, ``K`` the batch
            maximum; slots ``>= num_visible[b]`` are padding.
        num_visible (Tensor): (B,) visible tokens per image.
        max_groups (int): Largest number of sub-batches; 1 encodes the
            padded batch at once.
        encode (callable): ``encode(tokens (n, k, D), slots)`` -> (n, k', D),
            ``slots`` the (n, k) bool mask of real tokens, or None when the
            sub-batch has no padding; ``k' - k`` extra tokens (e.g. a class
            token) may be prepended.

    Returns:
        Tensor: (B, K + k' - k, D) in batch order; padded slots hold
        whatever ``encode`` left there (a decoder must not read them).
    """
    B, K, _ = x.shape
    slots = torch.arange(K, device=x.device)[None, :] < num_visible[:, None]
    outputs, order = [], []
    for idx, k, padded in visible_groups(num_visible, max_groups):
        out = encode(x[idx, :k], slots[idx, :k] if padded else None)
        outputs.append(F.pad(out, (0, 0, 0, K - k)))  # back to K slots
        order.append(idx)
    inverse = torch.argsort(torch.cat(order))
    return torch.cat(outputs)[inverse]
