"""``iBOTNeck``: iBoT's projection head (MLP + weight-normalised prototypes).

The same MLP maps the class token and the patch tokens to an L2-normalised
bottleneck; a weight-normalised prototype layer turns the class token into
``out_channels`` logits and a second one (or the same one, when shared) turns
the patch tokens into ``patch_out_channels`` logits. The loss lives in
:class:`~mmsbam.models.ibot.ibot_head.iBOTHead`.
"""
import math
from typing import Optional, Sequence, Tuple, Union

import torch
import torch.nn.functional as F
from mmengine.model import BaseModule
from torch import Tensor, nn

from mmpretrain.registry import MODELS

__all__ = ['iBOTNeck', 'PrototypeLayer']


class PrototypeLayer(nn.Module):
    """Bias-free linear layer with a hand-written weight normalisation.

    The effective weight is ``weight_g * weight / ||weight rows||``, as with
    ``nn.utils.weight_norm(nn.Linear(...), dim=0)``, but with two plain
    parameters, so the module can be deep-copied (``CosineEMA`` deep-copies
    the student) and saved as an ordinary state dict. ``weight`` keeps
    ``nn.Linear``'s default initialisation and ``weight_g`` starts at 1, so
    every prototype (row of the effective weight) starts with unit norm.

    Example:
        >>> layer = PrototypeLayer(256, 8192, norm_frozen=True)
        >>> layer(torch.randn(4, 256)).shape
        torch.Size([4, 8192])

    Args:
        in_features (int): Input dimension (the bottleneck).
        out_features (int): Number of prototypes.
        norm_frozen (bool): If True, ``weight_g`` does not require gradients,
            so the prototypes stay unit-norm. Defaults to True.
    """

    def __init__(self,
                 in_features: int,
                 out_features: int,
                 norm_frozen: bool = True) -> None:
        super().__init__()
        self.in_features = in_features
        self.out_features = out_features
        self.weight = nn.Parameter(torch.empty(out_features, in_features))
        # The same initialisation as nn.Linear.reset_parameters.
        nn.init.kaiming_uniform_(self.weight, a=math.sqrt(5))
        self.weight_g = nn.Parameter(
            torch.ones(out_features, 1), requires_grad=not norm_frozen)

    def effective_weight(self) -> Tensor:
        """The (out_features, in_features) weight actually applied."""
        return self.weight_g * self.weight / self.weight.norm(
            dim=1, keepdim=True)

    def forward(self, x: Tensor) -> Tensor:
        return F.linear(x, self.effective_weight())

    def extra_repr(self) -> str:
        return (f'in_features={self.in_features}, '
                f'out_features={self.out_features}, '
                f'norm_frozen={not self.weight_g.requires_grad}')


def _build_mlp(in_channels: int, hidden_channels: int,
               bottleneck_channels: int, num_layers: int) -> nn.Sequential:
    """``num_layers`` linear layers with GELU between them, trunc-normal
    (std 0.02) weights and zero biases."""
    dims = [in_channels] + [hidden_channels] * (num_layers - 1)
    dims.append(bottleneck_channels)
    layers = []
    for i in range(num_layers):
        linear = nn.Linear(dims[i], dims[i + 1])
        nn.init.trunc_normal_(linear.weight, std=0.02)
        nn.init.zeros_(linear.bias)
        layers.append(linear)
        if i < num_layers - 1:
            layers.append(nn.GELU())
    return nn.Sequential(*layers)


@MODELS.register_module()
class iBOTNeck(BaseModule):
    """iBoT's projection head for the class token and the patch tokens.

    MLP (``num_layers`` linears, GELU between) -> L2 normalisation ->
    weight-normalised prototype layer ``last_layer`` for the class token, and
    ``last_layer2`` for the patch tokens (or ``last_layer`` again when
    ``shared_last_layer``). Every prototype-layer parameter has
    ``'last_layer'`` in its name, the key by which the optimizer wrapper
    freezes them during the first epochs. The weights are initialised here
    (trunc-normal 0.02 for the MLP, ``nn.Linear``'s default for the
    prototypes); ``init_cfg`` only adds to that.

    Example:
        >>> neck = iBOTNeck(in_channels=64, hidden_channels=128,
        ...                 bottleneck_channels=32, out_channels=256,
        ...                 patch_out_channels=256)
        >>> cls, patch = neck(torch.randn(2, 1 + 49, 64))
        >>> cls.shape, patch.shape
        (torch.Size([2, 256]), torch.Size([2, 49, 256]))
        >>> neck(torch.randn(2, 1 + 9, 64), patch_tokens=False)[1] is None
        True

    Args:
        in_channels (int): Token dimension of the backbone.
        hidden_channels (int): Hidden dimension of the MLP. Defaults to 2048.
        bottleneck_channels (int): Output dimension of the MLP. Defaults to
            256.
        out_channels (int): Number of class-token prototypes K. Defaults to
            8192.
        patch_out_channels (int): Number of patch-token prototypes Kp; must
            equal ``out_channels`` when ``shared_last_layer``. Defaults to
            8192.
        num_layers (int): Number of linear layers of the MLP (>= 1).
            Defaults to 3.
        shared_last_layer (bool): Use ``last_layer`` for the patch tokens too
            (iBoT's ``--shared_head true``). Defaults to True.
        norm_last_layer (bool): Freeze the prototype norms at 1 (the
            ``weight_g`` parameters get ``requires_grad=False``). Defaults to
            True.
        init_cfg (dict or list[dict], optional): Extra initialisation config.
            Defaults to None.
    """

    def __init__(self,
                 in_channels: int,
                 hidden_channels: int = 2048,
                 bottleneck_channels: int = 256,
                 out_channels: int = 8192,
                 patch_out_channels: int = 8192,
                 num_layers: int = 3,
                 shared_last_layer: bool = True,
                 norm_last_layer: bool = True,
                 init_cfg: Optional[Union[dict, list]] = None) -> None:
        super().__init__(init_cfg=init_cfg)
        sizes = dict(in_channels=in_channels, hidden_channels=hidden_channels,
                     bottleneck_channels=bottleneck_channels,
                     out_channels=out_channels,
                     patch_out_channels=patch_out_channels,
                     num_layers=num_layers)
        for key, value in sizes.items():
            if isinstance(value, bool) or not isinstance(value, int) or \
                    value < 1:
                raise ValueError(f'{key} must be an integer >= 1, got '
                                 f'{value!r}')
        for key, value in dict(shared_last_layer=shared_last_layer,
                               norm_last_layer=norm_last_layer).items():
            if not isinstance(value, bool):
                raise TypeError(f'{key} must be True or False, got '
                                f'{value!r}')
        if shared_last_layer and patch_out_channels != out_channels:
            raise ValueError(
                'shared_last_layer=True needs patch_out_channels == '
                f'out_channels, got patch_out_channels={patch_out_channels} '
                f'and out_channels={out_channels}')
        self.shared_last_layer = shared_last_layer
        self.mlp = _build_mlp(in_channels, hidden_channels,
                              bottleneck_channels, num_layers)
        self.last_layer = PrototypeLayer(bottleneck_channels, out_channels,
                                         norm_last_layer)
        self.last_layer2 = None
        if not shared_last_layer:
            self.last_layer2 = PrototypeLayer(bottleneck_channels,
                                              patch_out_channels,
                                              norm_last_layer)

    @property
    def patch_layer(self) -> PrototypeLayer:
        """The prototype layer applied to the patch tokens."""
        return self.last_layer if self.last_layer2 is None \
            else self.last_layer2

    def forward(
        self,
        x: Union[Tensor, Sequence[Tensor]],
        patch_tokens: bool = True
    ) -> Tuple[Tensor, Optional[Tensor]]:
        """Project the tokens to prototype logits.

        Args:
            x (Tensor | Sequence[Tensor]): (B, 1 + N, C) tokens, class token
                first. A tuple or list (MMPretrain backbones' output) is
                replaced by its last element.
            patch_tokens (bool): Also project the patch tokens. False (local
                crops) skips all work on them. Defaults to True.

        Returns:
            tuple: ``(cls_logits (B, K), patch_logits (B, N, Kp))``, with
            ``None`` for ``patch_logits`` when ``patch_tokens`` is False.
        """
        if isinstance(x, (tuple, list)):
            x = x[-1]
        if x.dim() != 3:
            raise ValueError('iBOTNeck expects (B, 1 + N, C) tokens, got '
                             f'shape {tuple(x.shape)}')
        tokens = x if patch_tokens else x[:, :1]
        z = F.normalize(self.mlp(tokens), dim=-1, p=2)
        if not patch_tokens:
            return self.last_layer(z[:, 0]), None
        if self.last_layer2 is None:  # shared: one product for all tokens
            logits = self.last_layer(z)
            return logits[:, 0], logits[:, 1:]
        return self.last_layer(z[:, 0]), self.last_layer2(z[:, 1:])
