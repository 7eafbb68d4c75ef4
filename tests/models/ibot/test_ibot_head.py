"""iBOTHead: the iBoT loss (IBOT.md section 1.3), checked against direct
float64 loops over views, images and patches, plus two collapse controls on
a tiny student/teacher toy."""
import copy
import math

import numpy as np
import pytest
import torch

import mmsbam.models.ibot.ibot_head as ibot_head_module
from mmpretrain.registry import MODELS
from mmsbam.models.ibot.ibot_head import iBOTHead
from mmsbam.models.ibot.ibot_neck import iBOTNeck

K, KP, N = 7, 5, 6


def _inputs(ng=2, nl=0, batch=3, seed=0, mask_rows=None):
    """Random logits in the head's layout; ``mask_rows`` maps a row to its
    mask (others: random with at least one masked patch)."""
    g = torch.Generator().manual_seed(seed)
    masks = torch.rand(ng * batch, N, generator=g) < 0.5
    masks[:, 0] = True
    for row, mask in (mask_rows or {}).items():
        masks[row] = torch.tensor(mask, dtype=torch.bool)
    return dict(
        student_cls=torch.randn((ng + nl) * batch, K, generator=g) * 3,
        student_patch=torch.randn(ng * batch, N, KP, generator=g) * 3,
        teacher_cls=torch.randn(ng * batch, K, generator=g) * 3,
        teacher_patch=torch.randn(ng * batch, N, KP, generator=g) * 3,
        masks=masks)


def _np(inputs):
    return {k: v.detach().double().numpy() for k, v in inputs.items()}


def _softmax(x):
    e = np.exp(x - x.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


def _log_softmax(x):
    shifted = x - x.max(-1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(-1, keepdims=True))


def _ref_cls(a, ng, nl, center=0.0, t_temp=0.04, s_temp=0.1):
    """Loop over (teacher view q, student view v != q, image b); returns
    (loss, number of pairs)."""
    batch = a['teacher_cls'].shape[0] // ng
    p = _softmax((a['teacher_cls'] - center) / t_temp)
    log_s = _log_softmax(a['student_cls'] / s_temp)
    terms = []
    for q in range(ng):
        for v in range(ng + nl):
            if v == q:
                continue
            terms.append(
                np.mean([
                    -(p[q * batch + b] * log_s[v * batch + b]).sum()
                    for b in range(batch)
                ]))
    return sum(terms) / len(terms), len(terms)


def _ref_patch(a, ng, center=0.0, t_temp=0.04, s_temp=0.1):
    """Loop over (global view q, image b, patch i)."""
    batch = a['teacher_cls'].shape[0] // ng
    p = _softmax((a['teacher_patch'] - center) / t_temp)
    log_s = _log_softmax(a['student_patch'] / s_temp)
    total = 0.0
    for q in range(ng):
        per_image = []
        for b in range(batch):
            row = q * batch + b
            m = a['masks'][row]
            ce = [-(p[row, i] * log_s[row, i]).sum() for i in range(N)]
            per_image.append(
                sum(m[i] * ce[i] for i in range(N)) / max(m.sum(), 1.0))
        total += np.mean(per_image)
    return total / ng


def _head(ng=2, nl=0, **kwargs):
    return iBOTHead(K, KP, num_global_crops=ng, num_local_crops=nl, **kwargs)


def _value(t):
    return t.item()


def test_registered_as_iBOTHead_in_mmpretrain_models():
    head = MODELS.build(dict(type='iBOTHead', out_channels=K,
                             patch_out_channels=KP))
    assert isinstance(head, iBOTHead)
    assert head.center.shape == (1, K) and not head.center.any()
    assert head.patch_center.shape == (1, 1, KP)
    assert not head.patch_center.any()


@pytest.mark.parametrize('ng,nl,pairs', [(2, 2, 6), (2, 0, 2), (3, 1, 9)])
def test_cls_term_averages_cross_view_pairs_only(ng, nl, pairs):
    inputs = _inputs(ng, nl)
    losses = _head(ng, nl).loss(**inputs)
    ref, count = _ref_cls(_np(inputs), ng, nl)
    assert count == pairs == ng * (ng + nl) - ng
    assert _value(losses['loss_cls']) == pytest.approx(ref, rel=1e-5)


def test_student_view_gets_no_target_from_the_same_teacher_view():
    inputs = _inputs(2, 2)
    grads = []
    for scale in (1.0, -5.0):
        student = inputs['student_cls'].clone().requires_grad_()
        teacher = inputs['teacher_cls'].clone()
        teacher[:3] *= scale  # teacher view 0 only
        args = dict(inputs, student_cls=student, teacher_cls=teacher)
        _head(2, 2).loss(**args)['loss_cls'].backward()
        grads.append(student.grad)
    torch.testing.assert_close(grads[0][:3], grads[1][:3])  # view 0
    assert not torch.allclose(grads[0][3:], grads[1][3:])  # other views


@pytest.mark.parametrize('nl', [0, 2])
def test_patch_term_averages_masked_patches_per_image_then_all_images(nl):
    no_mask = [0] * N
    inputs = _inputs(2, nl, mask_rows={1: no_mask, 4: [1] * N})
    losses = _head(2, nl).loss(**inputs)
    ref = _ref_patch(_np(inputs), 2)
    assert _value(losses['loss_patch']) == pytest.approx(ref, rel=1e-5)


def test_image_without_mask_contributes_zero_and_dilutes_the_patch_term():
    # B = 2; image 1 is unmasked in both views: the patch term is half of
    # the patch term of image 0 alone.
    inputs = _inputs(2, 0, batch=2, mask_rows={1: [0] * N, 3: [0] * N})
    both = _head().loss(**inputs)['loss_patch']
    image0 = {k: v[0::2] for k, v in inputs.items()}  # rows v0b0, v1b0
    alone = _head().loss(**image0)['loss_patch']
    assert _value(both) == pytest.approx(_value(alone) / 2, rel=1e-6)
    assert _value(alone) > 0


def test_unmasked_student_patches_get_no_gradient():
    inputs = _inputs(2, 1)
    student = inputs['student_patch'].clone().requires_grad_()
    _head(2, 1).loss(**dict(inputs, student_patch=student))[
        'loss_patch'].backward()
    grad_norm = student.grad.norm(dim=-1)
    assert (grad_norm[~inputs['masks']] == 0).all()
    assert (grad_norm[inputs['masks']] > 0).all()


def test_loss_uses_the_old_centres_then_updates_them():
    head = _head(2, 1, center_momentum=0.8, patch_center_momentum=0.7)
    c0 = torch.linspace(-1, 1, K).view(1, K)
    c2 = torch.linspace(1, -2, KP).view(1, 1, KP)
    head.center.copy_(c0)
    head.patch_center.copy_(c2)
    inputs = _inputs(2, 1)
    a = _np(inputs)
    losses = head.loss(**inputs)
    assert _value(losses['loss_cls']) == pytest.approx(
        _ref_cls(a, 2, 1, center=c0.double().numpy())[0], rel=1e-5)
    assert _value(losses['loss_patch']) == pytest.approx(
        _ref_patch(a, 2, center=c2.double().numpy()), rel=1e-5)
    new_c = 0.8 * c0.double().numpy() + 0.2 * a['teacher_cls'].mean(0)
    new_c2 = 0.7 * c2.double().numpy() + 0.3 * a['teacher_patch'].mean(
        axis=(0, 1))
    np.testing.assert_allclose(head.center.numpy(), new_c, rtol=1e-5,
                               atol=1e-6)
    np.testing.assert_allclose(head.patch_center.numpy(), new_c2,
                               rtol=1e-5, atol=1e-6)
    # The next call uses the updated centres.
    again = head.loss(**inputs)
    assert _value(again['loss_cls']) == pytest.approx(
        _ref_cls(a, 2, 1, center=new_c)[0], rel=1e-5)


def test_patch_centre_is_the_mean_over_all_patches_masked_or_not():
    centres = []
    for masks in (torch.ones(6, N, dtype=torch.bool),
                  torch.zeros(6, N, dtype=torch.bool)):
        head = _head(patch_center_momentum=0.0)  # centre = this batch
        head.loss(**dict(_inputs(), masks=masks))
        centres.append(head.patch_center)
    teacher_patch = _inputs()['teacher_patch'].double()
    expected = torch.stack(
        [teacher_patch[r].mean(0) for r in range(6)]).mean(0)
    for centre in centres:
        torch.testing.assert_close(centre.view(-1).double(), expected)


def test_centre_update_divides_all_reduced_sums_by_rows_times_world_size(
        monkeypatch):
    # A simulated second rank whose teacher logits are all 10.
    inputs = _inputs()
    rows = inputs['teacher_cls'].shape[0]

    def all_reduce(data, op='sum', group=None):
        assert op == 'sum'
        data.add_(10.0 * rows)

    monkeypatch.setattr(ibot_head_module, 'get_world_size', lambda: 2)
    monkeypatch.setattr(ibot_head_module, 'all_reduce', all_reduce)
    head = _head(center_momentum=0.0, patch_center_momentum=0.0)
    head.loss(**inputs)
    expected = (inputs['teacher_cls'].mean(0) + 10.0) / 2
    torch.testing.assert_close(head.center.view(-1), expected)
    expected2 = (inputs['teacher_patch'].mean((0, 1)) + 10.0) / 2
    torch.testing.assert_close(head.patch_center.view(-1), expected2)


def test_temperatures_are_the_attributes_at_call_time():
    head = _head(teacher_temp=0.04, teacher_patch_temp=0.04)
    head.teacher_temp, head.teacher_patch_temp = 0.07, 0.055
    head.student_temp = 0.2
    inputs = _inputs()
    losses = head.loss(**inputs)
    a = _np(inputs)
    assert _value(losses['loss_cls']) == pytest.approx(
        _ref_cls(a, 2, 0, t_temp=0.07, s_temp=0.2)[0], rel=1e-5)
    assert _value(losses['loss_patch']) == pytest.approx(
        _ref_patch(a, 2, t_temp=0.055, s_temp=0.2), rel=1e-5)


def test_lambdas_scale_the_two_terms():
    inputs = _inputs(2, 2)
    plain = _head(2, 2).loss(**inputs)
    scaled = _head(2, 2, lambda1=0.5, lambda2=3.0).loss(**inputs)
    assert _value(scaled['loss_cls']) == pytest.approx(
        0.5 * _value(plain['loss_cls']), rel=1e-6)
    assert _value(scaled['loss_patch']) == pytest.approx(
        3.0 * _value(plain['loss_patch']), rel=1e-6)


def test_teacher_targets_are_detached():
    inputs = _inputs()
    teacher = {
        k: inputs[k].clone().requires_grad_()
        for k in ('teacher_cls', 'teacher_patch')
    }
    student = inputs['student_cls'].clone().requires_grad_()
    losses = _head().loss(**dict(inputs, student_cls=student, **teacher))
    sum(losses.values()).backward()
    assert student.grad is not None
    assert all(t.grad is None for t in teacher.values())


def test_loss_is_float32_for_bfloat16_inputs_under_autocast():
    inputs = _inputs(2, 1)
    low = {
        k: v.bfloat16() if v.is_floating_point() else v
        for k, v in inputs.items()
    }
    with torch.autocast('cpu', dtype=torch.bfloat16):
        losses = _head(2, 1).loss(**low)
    a = _np(low)  # the same bf16-rounded values, in float64
    assert all(v.dtype == torch.float32 for v in losses.values())
    assert _value(losses['loss_cls']) == pytest.approx(
        _ref_cls(a, 2, 1)[0], rel=1e-5)
    assert _value(losses['loss_patch']) == pytest.approx(
        _ref_patch(a, 2), rel=1e-5)


def test_masks_given_as_grids_are_flattened():
    inputs = _inputs()
    flat = _head().loss(**inputs)
    grid = _head().loss(**dict(inputs, masks=inputs['masks'].view(6, 2, 3)))
    torch.testing.assert_close(flat['loss_patch'], grid['loss_patch'])


@pytest.mark.parametrize('key,value,match', [
    ('student_cls', torch.zeros(5, K), 'student_cls'),
    ('student_patch', torch.zeros(6, N + 1, KP), 'student_patch'),
    ('masks', torch.zeros(6, N - 1, dtype=torch.bool), 'masks'),
    ('teacher_cls', torch.zeros(5, K), 'multiple'),
    ('teacher_cls', torch.zeros(6, K + 1), 'student_cls'),
])
def test_wrong_shapes_raise_value_error_naming_the_input(key, value, match):
    inputs = dict(_inputs(2, 0), **{key: value})
    with pytest.raises(ValueError, match=match):
        _head().loss(**inputs)


@pytest.mark.parametrize('kwargs,match', [
    (dict(num_global_crops=0), 'num_global_crops'),
    (dict(num_global_crops=1, num_local_crops=0), 'second view'),
    (dict(student_temp=0.0), 'student_temp'),
    (dict(teacher_temp=-0.1), 'teacher_temp'),
    (dict(center_momentum=1.5), 'center_momentum'),
    (dict(patch_center_momentum=-0.1), 'patch_center_momentum'),
])
def test_bad_arguments_raise_value_error_naming_the_key(kwargs, match):
    with pytest.raises(ValueError, match=match):
        iBOTHead(K, KP, **kwargs)


# ---------------------------------------------------------------------------
# Collapse controls. A tiny student iBOTNeck (K = 32 prototypes) learns with
# AdamW from two noisy views (unit noise) of fresh Gaussian "token" inputs;
# the teacher is its EMA (momentum 0.95). The teacher distribution is
# measured on a fixed batch after 400 steps. Seeds 0-4 all gave: no centring
# -> one argmax for every image; no sharpening -> per-image entropy log K to
# 3 decimals; both -> per-image entropy 0.29-0.38 log K, batch-mean entropy
# 0.83-0.94 log K, top prototype share <= 0.15.

TOY_K = 32


@pytest.fixture
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # faster and reproducible on a shared CPU
    yield
    torch.set_num_threads(threads)


def _toy(center_momentum, teacher_temp, steps=400, seed=0):
    torch.manual_seed(seed)
    g = torch.Generator().manual_seed(seed)
    student = iBOTNeck(16, hidden_channels=64, bottleneck_channels=16,
                       out_channels=TOY_K, patch_out_channels=TOY_K)
    teacher = copy.deepcopy(student).requires_grad_(False)
    head = iBOTHead(TOY_K, TOY_K, teacher_temp=teacher_temp,
                    teacher_patch_temp=teacher_temp,
                    center_momentum=center_momentum,
                    patch_center_momentum=center_momentum)
    optimizer = torch.optim.AdamW(student.parameters(), lr=3e-3,
                                  weight_decay=0.0)
    for _ in range(steps):
        x = torch.randn(32, 1 + 4, 16, generator=g)
        views = torch.cat(
            [x + torch.randn(x.shape, generator=g) for _ in range(2)])
        masks = torch.rand(64, 4, generator=g) < 0.5
        s_cls, s_patch = student(views)
        with torch.no_grad():
            t_cls, t_patch = teacher(views)
        loss = sum(head.loss(s_cls, s_patch, t_cls, t_patch, masks).values())
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        with torch.no_grad():
            for p_t, p_s in zip(teacher.parameters(), student.parameters()):
                p_t.mul_(0.95).add_(p_s, alpha=0.05)
    return _teacher_statistics(teacher, head, seed)


@torch.no_grad()
def _teacher_statistics(teacher, head, seed):
    """(mean per-image entropy, entropy of the batch-mean distribution,
    share of the most common argmax) of the teacher on a fixed batch."""
    x = torch.randn(256, 1 + 4, 16,
                    generator=torch.Generator().manual_seed(seed + 100))
    t_cls, _ = teacher(x, patch_tokens=False)
    p = torch.softmax((t_cls - head.center) / head.teacher_temp, dim=-1)
    entropy = -(p * p.clamp_min(1e-30).log()).sum(-1).mean().item()
    mean_p = p.mean(0)
    batch_entropy = -(mean_p * mean_p.clamp_min(1e-30).log()).sum().item()
    top_share = p.argmax(-1).bincount(minlength=TOY_K).max().item() / 256
    return entropy, batch_entropy, top_share, head.center


def test_without_centring_one_prototype_wins(one_thread):
    # center_momentum = 1 keeps the centre at its initial 0.
    start = _toy(1.0, 0.04, steps=0)
    entropy, batch_entropy, top_share, center = _toy(1.0, 0.04)
    assert not center.any()
    assert start[1] > 0.9 * math.log(TOY_K)  # at initialisation
    assert batch_entropy < 0.05 * math.log(TOY_K)
    assert top_share == 1.0  # one argmax for every image


def test_without_sharpening_the_teacher_drifts_to_uniform(one_thread):
    # teacher_temp == student_temp: per-image entropy -> log K.
    start = _toy(0.9, 0.1, steps=0)[0]
    entropy, batch_entropy, top_share, _ = _toy(0.9, 0.1)
    assert start < 0.6 * math.log(TOY_K)  # 0.54 log K at initialisation
    assert entropy > 0.98 * math.log(TOY_K)


def test_with_centring_and_sharpening_the_teacher_collapses_neither_way(
        one_thread):
    entropy, batch_entropy, top_share, _ = _toy(0.9, 0.04)
    assert entropy < 0.5 * math.log(TOY_K)  # confident per image
    assert batch_entropy > 0.75 * math.log(TOY_K)  # many prototypes in use
    assert top_share < 0.3
