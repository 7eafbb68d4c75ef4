"""Checks the token-dropping SBAM backbone tests share (MFF, MILAN, HiViT,
iTPN): test images whose patches differ in salience, and claims about one
masking."""
import torch

from mmpretrain.registry import MODELS


def images(n, size, channels=1, seed=0):
    """Noise of several scales plus ramps of several slopes: patches (and
    images) of clearly different salience."""
    g = torch.Generator().manual_seed(seed)
    out = []
    for i in range(n):
        x = torch.randn(1, channels, size, size, generator=g)
        x = x * 0.05 * 3**(i % 4)
        x = x + torch.linspace(-3, 3, size).view(1, 1, 1, size) * (i % 3)
        out.append(x)
    return torch.cat(out)


def build(cfg, seed=0):
    torch.manual_seed(seed)
    model = MODELS.build(cfg)
    model.init_weights()
    model.eval()  # some stock train() return None
    return model


def assert_exact_counts(mask, ratio):
    """(B, L) float 0/1, ``L - int(L (1 - r))`` masked in each image."""
    L = mask.shape[1]
    assert mask.dtype == torch.float32
    assert set(mask.unique().tolist()) <= {0.0, 1.0}
    ratio = torch.as_tensor(ratio, dtype=torch.float64).expand(mask.shape[0])
    expected = L - torch.floor(L * (1 - ratio)).long()
    assert torch.equal(mask.sum(1).long(), expected)


def assert_masks_most_salient(tokens, mask, np_token_salience):
    """With ``noise_scale=0`` the masked tokens are the most salient ones by
    the reference salience of ``tokens`` (float64, independent code)."""
    s = np_token_salience(tokens.detach().double().numpy())
    m = mask.numpy().astype(bool)
    for b in range(len(s)):
        assert s[b][m[b]].min() >= s[b][~m[b]].max() - 1e-6


def state_keys(cfg, stock_type):
    sbam = {k: v.shape for k, v in build(cfg).state_dict().items()}
    stock_cfg = dict(cfg, type=stock_type)
    stock = {k: v.shape for k, v in build(stock_cfg).state_dict().items()}
    return sbam, stock


def _tensors(out):
    """The tensors of a (nested) backbone output, in order."""
    if isinstance(out, torch.Tensor):
        return [out]
    return [t for item in out for t in _tensors(item)]


def assert_padding_ignores_masked_content(backbone, x, unit, monkeypatch):
    """With per-image counts (a padded batch), every returned feature,
    padded slots included, is unchanged when the pixels of the masked
    units (``unit`` x ``unit`` pixels each) change under the same masking:
    padded slots carry nothing of the masked units they were gathered
    from."""
    out = backbone(x)
    masking = backbone.masker.last_masking.masking
    assert masking.padded
    monkeypatch.setattr(backbone.masker, 'forward',
                        lambda *args, **kwargs: masking)
    B, L = masking.mask.shape
    side = int(round(L**0.5))
    masked_pixels = masking.mask.view(B, 1, side, side).repeat_interleave(
        unit, 2).repeat_interleave(unit, 3)
    noise = torch.randn(x.shape, generator=torch.Generator().manual_seed(1))
    out2 = backbone(x + 5 * noise * masked_pixels)
    first, second = _tensors(out), _tensors(out2)
    assert len(first) == len(second) > 0
    for a, b in zip(first, second):
        torch.testing.assert_close(a, b, atol=1e-6, rtol=0)
