"""Colour transforms on random data (kornia's habit): round trips, invariants and hand-derived values."""

from __future__ import annotations

import pytest
import torch
from stylereel.pipeline import color
from stylereel.pipeline.config import PreserveColors


def _random(shape=(1, 3, 16, 24), seed=0) -> torch.Tensor:
    return torch.rand(shape, generator=torch.Generator().manual_seed(seed))


def test_lab_of_white_black_and_red_are_the_textbook_values():
    pixels = torch.tensor([[1.0, 1.0, 1.0], [0.0, 0.0, 0.0], [1.0, 0.0, 0.0]]).T.reshape(1, 3, 1, 3)
    lab = color.rgb_to_lab(pixels)[0, :, 0].T  # (3 pixels, L a b)
    assert torch.allclose(lab[0], torch.tensor([100.0, 0.0, 0.0]), atol=0.01)
    assert torch.allclose(lab[1], torch.tensor([0.0, 0.0, 0.0]), atol=0.01)
    assert torch.allclose(lab[2], torch.tensor([53.24, 80.09, 67.20]), atol=0.05)  # sRGB red, D65


def test_lab_round_trip_is_the_identity():
    image = _random((2, 3, 8, 8))
    assert torch.allclose(color.lab_to_rgb(color.rgb_to_lab(image)), image, atol=1e-4)


def test_luminance_is_grey_with_the_same_lightness():
    image = _random()
    grey = color.luminance(image)
    assert grey.shape == image.shape
    lab, grey_lab = color.rgb_to_lab(image), color.rgb_to_lab(grey)
    assert torch.allclose(grey_lab[:, 0], lab[:, 0], atol=0.01)
    assert grey_lab[:, 1:].abs().max() < 0.01
    assert torch.equal(grey[:, 0], grey[:, 1]) and torch.equal(grey[:, 1], grey[:, 2])


def test_keep_colors_takes_lightness_from_the_stylized_and_a_b_from_the_content():
    content = 0.4 + 0.2 * _random(seed=1)  # muted colours: every mix stays inside the sRGB gamut
    stylized = color.luminance(0.3 + 0.4 * _random(seed=2))
    kept = color.rgb_to_lab(color.keep_colors(stylized, content))
    assert torch.allclose(kept[:, 0], color.rgb_to_lab(stylized)[:, 0], atol=0.01)
    assert torch.allclose(kept[:, 1:], color.rgb_to_lab(content)[:, 1:], atol=0.01)


def test_keep_colors_clamps_out_of_gamut_colours():
    red = torch.tensor([1.0, 0.0, 0.0])[None, :, None, None].expand(1, 3, 4, 4)
    dark = torch.full((1, 3, 4, 4), 0.1)  # saturated red at L* 10 is outside sRGB
    kept = color.keep_colors(dark, red)
    assert kept.min() >= 0 and kept.max() <= 1
    assert (color.rgb_to_lab(kept)[:, 1:] - color.rgb_to_lab(red)[:, 1:]).abs().mean() > 1


def test_keep_colors_of_the_content_itself_is_the_content():
    content = _random(seed=3)
    assert torch.allclose(color.keep_colors(content, content), content, atol=1e-4)


def test_match_luminance_has_the_content_mean_and_spread():
    style, content = 0.2 + 0.6 * _random(seed=4), 0.1 + 0.3 * _random((1, 3, 12, 12), seed=5)
    matched = color.rgb_to_lab(color.match_luminance(style, content))
    target = color.rgb_to_lab(content)[:, 0]
    assert torch.allclose(matched[:, 0].mean(), target.mean(), atol=0.05)
    assert torch.allclose(matched[:, 0].std(), target.std(), atol=0.05)
    assert matched[:, 1:].abs().max() < 0.01  # grey


def test_match_colors_gives_the_content_mean_and_covariance():
    style = _random((1, 3, 20, 30), seed=6) * torch.tensor([1.0, 0.3, 0.6])[:, None, None]
    mixing = torch.tensor([[1.0, 0.2, 0.0], [0.0, 1.0, 0.5], [0.3, 0.0, 1.0]]) / 2  # correlated channels
    content = torch.einsum("ij,bjhw->bihw", mixing, _random((1, 3, 16, 16), seed=7))
    mapped = color.match_colors(style, content)
    assert mapped.shape == style.shape and mapped.dtype == style.dtype

    def stats(image):
        flat = image.double().flatten(2)[0]  # (3, N)
        return flat.mean(1), torch.cov(flat, correction=0)

    (mean, covariance), (target_mean, target_covariance) = stats(mapped), stats(content)
    assert torch.allclose(mean, target_mean, atol=1e-3)
    assert torch.allclose(covariance, target_covariance, atol=1e-3)
    assert not torch.allclose(stats(style)[1], target_covariance, atol=1e-3)  # it had to change


def test_match_colors_is_the_identity_on_the_same_statistics():
    image = _random(seed=8)
    assert torch.allclose(color.match_colors(image, image), image, atol=1e-3)


def test_style_for_each_mode():
    style, content = _random(seed=9), _random(seed=10)
    assert color.style_for(PreserveColors.none, style, content) is style
    assert torch.equal(color.style_for(PreserveColors.luminance, style, content), color.match_luminance(style, content))
    histogram = color.style_for(PreserveColors.histogram, style, content)
    assert histogram.min() >= 0 and histogram.max() <= 1


@pytest.mark.parametrize("function", [color.rgb_to_lab, color.luminance])
def test_functions_do_not_modify_their_input(function):
    image = _random(seed=11)
    before = image.clone()
    function(image)
    assert torch.equal(image, before)
