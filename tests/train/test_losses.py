"""Tests for rmforge.train.losses: golden values, gradients, stability, masking, weights."""

import math

import numpy as np
import pytest
import torch
from torch.autograd import gradcheck

from rmforge.train.losses import (
    bradley_terry_loss,
    combine_attributes,
    davidson_log_probs,
    pair_metrics,
    pairwise_loss,
    plackett_luce_loss,
    rao_kupper_log_probs,
    regression_loss,
)

D64 = torch.float64


def t(values, dtype=D64, **kw):
    return torch.tensor(values, dtype=dtype, **kw)


# ----------------------------------------------------------------------------- Bradley-Terry
# -logsigmoid(1) = log(1 + e^-1) = 0.31326168751822286; -logsigmoid(-2) = log(1 + e^2) = 2.1269280110429727
BT_D = (0.31326168751822286, 2.1269280110429727)


def test_bt_golden_plain():
    loss, m = bradley_terry_loss(t([1.0, 0.0]), t([0.0, 2.0]))  # d = [1, -2]
    assert loss.item() == pytest.approx(1.2200948492805979, abs=1e-12)
    assert m["center"].item() == 0.0 and not m["nll"].requires_grad


def test_bt_golden_margin_and_scale():
    # d - m = [0.5, -2.5]: (log(1 + e^-0.5) + log(1 + e^2.5)) / 2
    expected = 1.526483359236328
    loss, _ = bradley_terry_loss(t([1.0, 0.0]), t([0.0, 2.0]), margin=t([0.5, 0.5]))
    assert loss.item() == pytest.approx(expected, abs=1e-12)
    loss, _ = bradley_terry_loss(t([1.0, 0.0]), t([0.0, 2.0]), margin=t([0.25, 0.25]), margin_scale=2.0)
    assert loss.item() == pytest.approx(expected, abs=1e-12)
    loss, _ = bradley_terry_loss(t([1.0, 0.0]), t([0.0, 2.0]), margin=0.5)
    assert loss.item() == pytest.approx(expected, abs=1e-12)


def test_bt_center_term():
    # (r_c + r_r) = [1, 2] -> mean of squares 2.5; coefficient 0.1 -> +0.25
    loss, m = bradley_terry_loss(t([1.0, 0.0]), t([0.0, 2.0]), center_coef=0.1)
    assert m["center"].item() == pytest.approx(0.25, abs=1e-12)
    assert loss.item() == pytest.approx(1.2200948492805979 + 0.25, abs=1e-12)


def test_bt_accepts_head_logits_and_weights():
    r_c, r_r = t([[1.0], [0.0]]), t([[0.0], [2.0]])
    loss, _ = bradley_terry_loss(r_c, r_r, weights=t([1.0, 3.0]))
    assert loss.item() == pytest.approx((BT_D[0] + 3 * BT_D[1]) / 4, abs=1e-12)
    same, _ = bradley_terry_loss(r_c, r_r, weights=t([2.0, 2.0]))
    assert same.item() == pytest.approx(sum(BT_D) / 2, abs=1e-12)


def test_bt_shape_errors():
    with pytest.raises(ValueError):
        bradley_terry_loss(t([1.0, 2.0]), t([1.0]))
    with pytest.raises(ValueError):
        bradley_terry_loss(t([1.0, 2.0]), t([1.0, 0.0]), weights=t([1.0]))


def test_bt_gradcheck():
    r_c = torch.randn(5, dtype=D64, requires_grad=True)
    r_r = torch.randn(5, dtype=D64, requires_grad=True)
    m, w = torch.rand(5, dtype=D64), torch.rand(5, dtype=D64) + 0.1
    assert gradcheck(
        lambda a, b: bradley_terry_loss(a, b, margin=m, margin_scale=0.7, center_coef=0.3, weights=w)[0],
        (r_c, r_r),
    )


# ----------------------------------------------------------------------------- tie models
def np_rao_kupper(ri, rj, theta):
    pi, pj = np.exp(ri), np.exp(rj)
    win = pi / (pi + theta * pj)
    loss = pj / (pj + theta * pi)
    tie = (theta**2 - 1) * pi * pj / ((pi + theta * pj) * (pj + theta * pi))
    return win, loss, tie


def np_davidson(ri, rj, nu):
    pi, pj = np.exp(ri), np.exp(rj)
    z = pi + pj + nu * np.sqrt(pi * pj)
    return pi / z, pj / z, nu * np.sqrt(pi * pj) / z


@pytest.mark.parametrize(
    "fn, np_fn, param",
    [(rao_kupper_log_probs, np_rao_kupper, 2.0), (rao_kupper_log_probs, np_rao_kupper, 1.3),
     (davidson_log_probs, np_davidson, 1.0), (davidson_log_probs, np_davidson, 0.4)],
)
def test_tie_model_probabilities_match_direct_formula(fn, np_fn, param):
    ri = np.array([0.3, -1.2, 2.0, 0.0, 5.0])
    rj = np.array([0.1, 0.7, -3.0, 0.0, 4.5])
    got = fn(t(ri - rj), param)
    for g, e in zip(got, np_fn(ri, rj, param), strict=True):
        np.testing.assert_allclose(g.exp().numpy(), e, rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("fn, param", [(rao_kupper_log_probs, 2.0), (davidson_log_probs, 1.0),
                                       (rao_kupper_log_probs, 1.01), (davidson_log_probs, 30.0)])
def test_tie_model_probabilities_sum_to_one(fn, param):
    d = t([-80.0, -10.0, -1.0, 0.0, 0.5, 3.0, 80.0])
    lw, ll, lt = fn(d, param)
    total = torch.logsumexp(torch.stack([lw, ll, lt]), dim=0)
    np.testing.assert_allclose(total.numpy(), 0.0, atol=1e-12)
    assert torch.isfinite(torch.stack([lw, ll, lt])).all()


def test_default_tie_params_give_one_third_at_equal_rewards():
    for model in ("rao-kupper", "davidson"):
        _, m = pairwise_loss(t([0.0]), t([0.0]), tie=torch.tensor([True]), tie_model=model)
        assert m["nll_tie"].item() == pytest.approx(math.log(3.0), abs=1e-12)


def test_degenerate_params_reduce_to_bt():
    d = t([1.0, -2.0])
    np.testing.assert_allclose(rao_kupper_log_probs(d, 1.0)[0].numpy(), torch.nn.functional.logsigmoid(d).numpy())
    np.testing.assert_allclose(davidson_log_probs(d, 0.0)[0].numpy(), torch.nn.functional.logsigmoid(d).numpy())


def test_pairwise_no_tie_model_matches_bt_and_soft_label_for_ties():
    r_c, r_r = t([1.0, 0.0, 0.4]), t([0.0, 2.0, -0.6])
    no_tie = torch.tensor([False, False, False])
    bt, _ = bradley_terry_loss(r_c, r_r, margin=t([0.2, 0.1, 0.0]), center_coef=0.05)
    for model in (None, "none"):
        pw, _ = pairwise_loss(r_c, r_r, no_tie, margin=t([0.2, 0.1, 0.0]), tie_model=model, center_coef=0.05)
        assert pw.item() == pytest.approx(bt.item(), abs=1e-14)
    pw, _ = pairwise_loss(r_c, r_r, tie_model=None)  # tie=None means no ties
    assert pw.item() == pytest.approx(bradley_terry_loss(r_c, r_r)[0].item(), abs=1e-14)
    # third pair a tie: 0.5 * (log(1 + e^-1) + log(1 + e^1)); margin ignored for ties
    tie = torch.tensor([False, False, True])
    pw, m = pairwise_loss(r_c, r_r, tie, margin=t([0.0, 0.0, 5.0]), tie_model=None)
    tie_term = 0.5 * (math.log1p(math.exp(-1.0)) + math.log1p(math.exp(1.0)))
    assert pw.item() == pytest.approx((BT_D[0] + BT_D[1] + tie_term) / 3, abs=1e-12)
    assert m["nll_tie"].item() == pytest.approx(tie_term, abs=1e-12)
    assert m["num_ties"].item() == 1


@pytest.mark.parametrize("model, param", [("rao-kupper", 2.0), ("davidson", 1.0)])
def test_pairwise_tie_model_golden(model, param):
    r_c, r_r = t([1.0, 0.3]), t([0.0, -0.2])
    tie = torch.tensor([False, True])
    np_fn = np_rao_kupper if model == "rao-kupper" else np_davidson
    win = np_fn(1.0 - 0.5, 0.0, param)[0]  # margin 0.5 on the non-tie pair
    tie_p = np_fn(0.3, -0.2, param)[2]  # no margin on the tie
    loss, _ = pairwise_loss(r_c, r_r, tie, margin=t([0.5, 9.0]), tie_model=model, tie_param=param)
    assert loss.item() == pytest.approx(-(np.log(win) + np.log(tie_p)) / 2, abs=1e-12)


@pytest.mark.parametrize("model", [None, "rao-kupper", "davidson"])
def test_tie_loss_minimised_at_zero_difference(model):
    d = torch.linspace(-4, 4, 81, dtype=D64, requires_grad=True)
    tie = torch.ones(81, dtype=torch.bool)
    nll = torch.stack([pairwise_loss(x[None], torch.zeros(1, dtype=D64), tie[:1], tie_model=model)[0] for x in d])
    assert int(nll.argmin()) == 40  # d = 0
    zero = torch.zeros(1, dtype=D64, requires_grad=True)
    (g,) = torch.autograd.grad(pairwise_loss(zero, torch.zeros(1, dtype=D64), tie[:1], tie_model=model)[0], zero)
    assert abs(g.item()) < 1e-12


@pytest.mark.parametrize("model", [None, "rao-kupper", "davidson"])
@pytest.mark.parametrize("dtype", [torch.float32, D64])
def test_pairwise_stable_at_extreme_differences(model, dtype):
    r_c = torch.tensor([80.0, -80.0, 80.0, -80.0, 1e4], dtype=dtype, requires_grad=True)
    r_r = torch.zeros(5, dtype=dtype, requires_grad=True)
    tie = torch.tensor([False, False, True, True, False])
    loss, _ = pairwise_loss(r_c, r_r, tie, tie_model=model, center_coef=0.0)
    loss.backward()
    assert torch.isfinite(loss) and torch.isfinite(r_c.grad).all() and torch.isfinite(r_r.grad).all()
    # per pair ~ [0, 80, 40, 40, 0] (BT soft label, Davidson: ties cost |d|/2);
    # Rao-Kupper (theta = 2): [0, 80 + log 2, 2x (80 + log 2 - log 3), 0]
    expected = {None: 32.0, "davidson": 32.0, "rao-kupper": (240 + 3 * math.log(2) - 2 * math.log(3)) / 5}
    assert loss.item() == pytest.approx(expected[model], rel=1e-6)


@pytest.mark.parametrize("model", ["rao-kupper", "davidson"])
def test_pairwise_gradcheck_including_tie_param(model):
    g = torch.Generator().manual_seed(0)
    r_c = torch.randn(6, dtype=D64, generator=g, requires_grad=True)
    r_r = torch.randn(6, dtype=D64, generator=g, requires_grad=True)
    param = torch.tensor(1.7, dtype=D64, requires_grad=True)
    tie = torch.tensor([True, False, True, False, False, True])
    m, w = torch.rand(6, dtype=D64, generator=g), torch.rand(6, dtype=D64, generator=g) + 0.1
    assert gradcheck(
        lambda a, b, p: pairwise_loss(a, b, tie, margin=m, tie_model=model, tie_param=p,
                                      center_coef=0.1, weights=w)[0],
        (r_c, r_r, param),
    )


def test_pairwise_rejects_bad_arguments():
    r = t([0.0, 1.0])
    with pytest.raises(ValueError, match="tie_model"):
        pairwise_loss(r, r, tie_model="thurstone")
    with pytest.raises(ValueError, match="theta"):
        pairwise_loss(r, r, tie_model="rao-kupper", tie_param=1.0)
    with pytest.raises(ValueError, match="nu"):
        pairwise_loss(r, r, tie_model="davidson", tie_param=0.0)
    with pytest.raises(ValueError, match="tie"):
        pairwise_loss(r, r, tie=torch.tensor([True]))


# ----------------------------------------------------------------------------- Plackett-Luce
def test_pl_golden_strict_and_breslow_ties():
    # strict [1, 0, -1]: log(e + 1 + e^-1) - 1 + log(1 + e^-1)
    loss, _ = plackett_luce_loss(t([[1.0, 0.0, -1.0]]), torch.tensor([[1, 2, 3]]))
    assert loss.item() == pytest.approx(0.7208676519626032, abs=1e-12)
    # first two tied: both share the denominator log(e + 1 + e^-1); the last stage is 0
    loss, _ = plackett_luce_loss(t([[1.0, 0.0, -1.0]]), torch.tensor([[1, 1, 2]]))
    assert loss.item() == pytest.approx(1.8152119288887607, abs=1e-12)


def test_pl_equals_bt_for_two_candidates():
    r_c, r_r = t([1.0, 0.0, -3.0, 7.5]), t([0.0, 2.0, 4.0, 7.4])
    bt, _ = bradley_terry_loss(r_c, r_r)
    pl, _ = plackett_luce_loss(torch.stack([r_c, r_r], 1), torch.tensor([[1, 2]] * 4))
    assert pl.item() == bt.item()
    pl_swapped, _ = plackett_luce_loss(torch.stack([r_r, r_c], 1), torch.tensor([[2, 1]] * 4))
    assert pl_swapped.item() == pytest.approx(bt.item(), abs=1e-14)


def test_pl_invariant_to_candidate_order():
    g = torch.Generator().manual_seed(1)
    rewards = torch.randn(3, 5, dtype=D64, generator=g)
    ranks = torch.tensor([[1, 2, 3, 4, 5], [2, 1, 2, 3, 1], [1, 1, 1, 1, 1]])
    base, _ = plackett_luce_loss(rewards, ranks)
    perm = torch.tensor([3, 0, 4, 2, 1])
    permuted, _ = plackett_luce_loss(rewards[:, perm], ranks[:, perm])
    assert permuted.item() == pytest.approx(base.item(), abs=1e-12)


def test_pl_masked_padding_changes_nothing():
    rewards = t([[0.5, -0.2, 1.5]])
    ranks = torch.tensor([[2, 3, 1]])
    base, _ = plackett_luce_loss(rewards, ranks)
    padded = torch.cat([rewards, t([[1e4, float("nan")]])], 1).requires_grad_()
    pranks = torch.cat([ranks, torch.tensor([[0, 1]])], 1)
    mask = torch.tensor([[True, True, True, False, False]])
    loss, _ = plackett_luce_loss(padded, pranks, mask)
    assert loss.item() == pytest.approx(base.item(), abs=1e-14)
    loss.backward()
    assert torch.isfinite(padded.grad).all() and (padded.grad[0, 3:] == 0).all()
    # a batch mixing a padded sample and an all-padding sample: the latter contributes 0
    batch = torch.cat([padded.detach(), t([[0.0] * 5])])
    bmask = torch.cat([mask, torch.zeros(1, 5, dtype=torch.bool)])
    loss2, _ = plackett_luce_loss(batch, torch.cat([pranks, pranks]), bmask)
    assert loss2.item() == pytest.approx(base.item() / 2, abs=1e-14)


def test_pl_weights_and_metrics():
    rewards = t([[1.0, 0.0], [0.0, 2.0]])
    ranks = torch.tensor([[1, 2], [1, 2]])
    loss, m = plackett_luce_loss(rewards, ranks, weights=t([1.0, 3.0]))
    assert loss.item() == pytest.approx((BT_D[0] + 3 * BT_D[1]) / 4, abs=1e-12)
    assert m["top1_accuracy"].item() == pytest.approx(0.25)


def test_pl_gradcheck_and_extremes():
    g = torch.Generator().manual_seed(2)
    rewards = torch.randn(2, 4, dtype=D64, generator=g, requires_grad=True)
    ranks = torch.tensor([[1, 2, 2, 3], [3, 1, 2, 4]])
    mask = torch.tensor([[True, True, True, True], [True, True, True, False]])
    assert gradcheck(lambda r: plackett_luce_loss(r, ranks, mask)[0], (rewards,))
    big = torch.tensor([[1e4, -1e4, 0.0]], requires_grad=True)
    loss, _ = plackett_luce_loss(big, torch.tensor([[3, 1, 2]]))
    loss.backward()
    assert torch.isfinite(loss) and torch.isfinite(big.grad).all()


# ----------------------------------------------------------------------------- pointwise
def test_regression_mse_mask_and_attribute_weights():
    pred = t([[1.0, 2.0], [0.0, 4.0]])
    target = t([[2.0, 2.0], [3.0, 0.0]])  # squared errors [[1, 0], [9, 16]]
    loss, m = regression_loss(pred, target)
    assert loss.item() == pytest.approx(26 / 4)
    mask = torch.tensor([[True, True], [True, False]])
    loss, m = regression_loss(pred, target, mask)
    assert loss.item() == pytest.approx(10 / 3)
    np.testing.assert_allclose(m["per_attribute"].numpy(), [5.0, 0.0])
    assert m["mae"].item() == pytest.approx(4 / 3)
    loss, _ = regression_loss(pred, target, mask, attribute_weights=[1.0, 2.0])
    assert loss.item() == pytest.approx((1 + 9 + 0) / 4)
    loss, _ = regression_loss(pred, target, mask, weights=t([1.0, 2.0]))
    assert loss.item() == pytest.approx((1 + 0 + 18) / 4)


def test_regression_nan_target_is_missing_and_gets_no_gradient():
    pred = t([[1.0, 2.0], [0.0, 4.0]], requires_grad=True)
    target = t([[2.0, float("nan")], [3.0, 0.0]])
    loss, _ = regression_loss(pred, target)
    assert loss.item() == pytest.approx(26 / 3)
    loss.backward()
    assert pred.grad[0, 1].item() == 0.0 and torch.isfinite(pred.grad).all()


def test_regression_huber_and_scalar_head():
    pred, target = t([0.0, 0.0, 0.0]), t([0.5, 3.0, -2.0])
    # delta = 1: 0.5 * 0.25, 1 * (3 - 0.5), 1 * (2 - 0.5)
    loss, _ = regression_loss(pred, target, kind="huber")
    assert loss.item() == pytest.approx((0.125 + 2.5 + 1.5) / 3)
    loss, _ = regression_loss(pred, target, kind="huber", huber_delta=2.0)  # 0.125, 2*(3-1), 0.5*4
    assert loss.item() == pytest.approx((0.125 + 4.0 + 2.0) / 3)
    x = torch.randn(3, 2, dtype=D64, requires_grad=True)
    y = torch.randn(3, 2, dtype=D64) * 2
    assert gradcheck(lambda p: regression_loss(p, y, kind="huber", attribute_weights=[0.3, 1.0])[0], (x,))
    with pytest.raises(ValueError):
        regression_loss(pred, target, kind="l1")


def test_combine_attributes():
    values = t([[1.0, 2.0, 3.0], [0.0, -1.0, 4.0]])
    np.testing.assert_allclose(combine_attributes(values, [0.5, 1.0, 0.0]).numpy(), [2.5, -1.0])
    np.testing.assert_allclose(combine_attributes(values.float(), t([1.0, 1.0, 1.0])).numpy(), [6.0, 3.0])
    with pytest.raises(ValueError):
        combine_attributes(values, [1.0, 2.0])


# ----------------------------------------------------------------------------- metrics
def test_pair_metrics_golden():
    r_c = torch.tensor([2.0, 0.0, 1.0, 0.5])
    r_r = torch.tensor([1.0, 0.0, 3.0, 0.0])
    m = pair_metrics(r_c, r_r, tie=torch.tensor([False, False, False, True]))
    assert m["accuracy"] == pytest.approx(1 / 3)  # 0 vs 0 is not a win
    assert m["margin"] == pytest.approx((1 + 0 - 2) / 3)
    assert m["tie_abs_diff"] == pytest.approx(0.5)
    rewards = np.array([2.0, 0.0, 1.0, 0.5, 1.0, 0.0, 3.0, 0.0])
    assert m["reward_mean"] == pytest.approx(rewards.mean())
    assert m["reward_std"] == pytest.approx(rewards.std())
    assert (m["reward_min"], m["reward_max"]) == (0.0, 3.0)
    assert (m["num_pairs"], m["num_ties"]) == (4.0, 1.0)
    assert all(isinstance(v, float) for v in m.values())
    m = pair_metrics(r_c, r_r)
    assert m["accuracy"] == 0.5 and math.isnan(m["tie_abs_diff"])
