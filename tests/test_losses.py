"""Losses on tiny tensors: hand-computed values, invariants and gradchecks."""

import pytest
import torch
from stylereel.pipeline.losses import content_loss, gram_matrix, range_loss, style_loss, temporal_loss, tv_loss


def test_gram_matrix_shape_and_hand_value():
    # One channel pair over 2 pixels: [[1, 2], [3, 4]] -> F F^T / M with M = 2.
    features = torch.tensor([[1.0, 2.0], [3.0, 4.0]]).reshape(1, 2, 1, 2)
    gram = gram_matrix(features)
    assert gram.shape == (1, 2, 2)
    expected = torch.tensor([[[5.0, 11.0], [11.0, 25.0]]]) / 2
    torch.testing.assert_close(gram, expected)


def test_gram_matrix_ignores_pixel_order():
    torch.manual_seed(0)
    features = torch.rand(2, 4, 3, 5)
    permutation = torch.randperm(15)
    shuffled = features.reshape(2, 4, 15)[..., permutation].reshape(2, 4, 3, 5)
    torch.testing.assert_close(gram_matrix(shuffled), gram_matrix(features))


def test_gram_matrix_does_not_depend_on_resolution_of_a_tiled_pattern():
    torch.manual_seed(0)
    tile = torch.rand(1, 3, 2, 2)
    torch.testing.assert_close(gram_matrix(tile.repeat(1, 1, 4, 4)), gram_matrix(tile))


def test_content_loss_hand_value_and_zero_at_target():
    features = torch.zeros(1, 2, 2, 2)
    target = torch.ones(1, 2, 2, 2) * 3
    assert content_loss(features, target).item() == 9.0
    assert content_loss(target, target).item() == 0.0


def test_style_loss_is_mean_squared_gram_difference():
    gram = torch.tensor([[[1.0, 2.0], [2.0, 4.0]]])
    target = torch.tensor([[[0.0, 2.0], [2.0, 2.0]]])
    assert style_loss(gram, target).item() == (1 + 4) / 4


def test_tv_loss_constant_is_zero_and_step_hand_value():
    assert tv_loss(torch.full((1, 3, 4, 4), 0.3)).item() == 0.0
    image = torch.zeros(1, 1, 2, 2)
    image[..., :, 1] = 1.0  # a vertical edge: every horizontal pair differs by 1, no vertical pair differs
    assert tv_loss(image).item() == 1.0


def test_temporal_loss_zero_where_equal_and_masked_elsewhere():
    torch.manual_seed(0)
    warped = torch.rand(1, 3, 4, 4)
    image = warped.clone()
    image[..., 0, :] += 0.5  # differs only on row 0
    mask = torch.ones(1, 1, 4, 4)
    mask[..., 0, :] = 0  # ... which is occluded
    assert temporal_loss(image, warped, mask).item() == 0.0
    mask[..., 0, :] = 1
    # Ruder eq. 7: (1/D) sum c_k (x_k - w_k)^2 with D = W x H x C = 4 x 4 x 3 = 48 (12 entries differ by 0.5).
    assert abs(temporal_loss(image, warped, mask).item() - 0.25 * 12 / (4 * 4 * 3)) < 1e-6


def test_range_loss_is_zero_inside_and_the_mean_squared_excess_outside():
    inside = torch.rand(1, 3, 4, 4)
    assert range_loss(inside) == 0
    image = torch.full((1, 3, 2, 2), 0.5)
    image[0, 0, 0, 0], image[0, 1, 1, 1] = 1.5, -0.25  # 0.5 over and 0.25 under, of 12 values
    assert range_loss(image).item() == pytest.approx((0.5**2 + 0.25**2) / 12)
    image.requires_grad_(True)
    range_loss(image).backward()
    assert image.grad[0, 0, 0, 0] > 0 and image.grad[0, 1, 1, 1] < 0  # pushed back towards the range
    assert (image.grad[0, 2] == 0).all()


def test_losses_never_modify_inputs():
    torch.manual_seed(0)
    a, b, mask = torch.rand(1, 3, 4, 4), torch.rand(1, 3, 4, 4), torch.rand(1, 1, 4, 4)
    copies = [a.clone(), b.clone(), mask.clone()]
    content_loss(a, b), tv_loss(a), temporal_loss(a, b, mask), style_loss(gram_matrix(a), gram_matrix(b))
    for original, copy in zip((a, b, mask), copies):
        assert torch.equal(original, copy)


def test_gradcheck_style_and_temporal():
    torch.manual_seed(0)
    features = torch.rand(1, 3, 2, 3, dtype=torch.float64, requires_grad=True)
    target = gram_matrix(torch.rand(1, 3, 2, 3, dtype=torch.float64))
    assert torch.autograd.gradcheck(lambda f: style_loss(gram_matrix(f), target), (features,))
    warped, mask = torch.rand(1, 3, 2, 3, dtype=torch.float64), torch.rand(1, 1, 2, 3, dtype=torch.float64)
    image = torch.rand(1, 3, 2, 3, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda x: temporal_loss(x, warped, mask) + tv_loss(x), (image,))


def test_gram_matrix_gradient_matches_autograd_of_the_plain_product():
    features = torch.rand(2, 3, 4, 5, dtype=torch.float64, requires_grad=True)
    weights = torch.rand(2, 3, 3, dtype=torch.float64)
    (ours,) = torch.autograd.grad((gram_matrix(features) * weights).sum(), features)
    flat = features.reshape(2, 3, 20)
    (plain,) = torch.autograd.grad((flat @ flat.transpose(1, 2) / 20 * weights).sum(), features)
    torch.testing.assert_close(ours, plain)
    assert torch.autograd.gradcheck(gram_matrix, (features,))
