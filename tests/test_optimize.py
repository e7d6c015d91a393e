"""The optimiser loop: the loss falls, inputs stay untouched, temporal targets pull, seeds reproduce."""

from dataclasses import replace

import pytest
import torch

from stylereel.pipeline.config import Config, Optimizer
from stylereel.pipeline.model import VGG19
from stylereel.pipeline.optimize import Targets, content_targets, frame_losses, style_grams, stylize_frame

CONFIG = replace(Config(), style_weight=1e-2, tv_weight=0.0)


@pytest.fixture(scope="module")
def setup():
    torch.manual_seed(0)
    model = VGG19(last_layer="conv5_1")  # random weights: the loop's mechanics do not need real ones
    content = torch.rand(1, 3, 24, 24)
    style = torch.rand(1, 3, 24, 24).pow(3)
    targets = Targets(content_targets(model, content, CONFIG), style_grams(model, [style], (), CONFIG))
    return model, content, targets


@pytest.mark.parametrize("optimizer", [Optimizer.lbfgs, Optimizer.adam])
def test_loss_after_some_steps_is_below_loss_at_start(setup, optimizer):
    model, content, targets = setup
    config = replace(CONFIG, optimizer=optimizer, learning_rate=1.0 if optimizer == Optimizer.lbfgs else 0.05)
    start = frame_losses(model, content, targets, config)["total"].item()
    result = stylize_frame(model, content, targets, config=config, n_iters=5)
    assert result.iterations == 5
    assert result.losses["total"] < start
    assert result.image.shape == content.shape and 0 <= result.image.min() and result.image.max() <= 1


def test_init_is_not_modified_and_callback_reports_every_iteration(setup):
    model, content, targets = setup
    before = content.clone()
    seen = []
    stylize_frame(model, content, targets, config=CONFIG, n_iters=6, callback=seen.append)
    assert torch.equal(content, before)
    assert [event.iteration for event in seen] == [1, 2, 3, 4, 5, 6]
    assert seen[4].loss is not None and seen[-1].loss is not None and seen[0].loss is None


def test_temporal_loss_pulls_towards_the_warped_frame(setup):
    model, content, targets = setup
    warped = torch.full_like(content, 0.5)
    mask = torch.ones(1, 1, 24, 24)
    pulled = Targets(targets.content, targets.grams, warped=warped, mask=mask)
    free = stylize_frame(model, content, targets, config=CONFIG, n_iters=4).image
    held = stylize_frame(model, content, pulled, config=replace(CONFIG, temporal_weight=1e6), n_iters=4).image
    assert (held - warped).abs().mean() < (free - warped).abs().mean()


def test_blended_grams_are_the_weighted_mean(setup):
    model, _, _ = setup
    a, b = torch.rand(1, 3, 16, 16), torch.rand(1, 3, 16, 16)
    blended = style_grams(model, [a, b], (3.0, 1.0), CONFIG)
    single_a, single_b = style_grams(model, [a], (), CONFIG), style_grams(model, [b], (), CONFIG)
    for name in CONFIG.style_layers:
        torch.testing.assert_close(blended[name], 0.75 * single_a[name] + 0.25 * single_b[name])
    with pytest.raises(ValueError, match="2 style blend weights for 1 style images"):
        style_grams(model, [a], (1.0, 2.0), CONFIG)


def test_same_seed_same_result(setup):
    model, content, targets = setup
    results = []
    for _ in range(2):
        torch.manual_seed(3)
        results.append(stylize_frame(model, content, targets, config=CONFIG, n_iters=3).image)
    assert torch.equal(results[0], results[1])
