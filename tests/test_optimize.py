"""The optimiser loop: the loss falls, inputs stay untouched, temporal targets pull, seeds reproduce."""

from dataclasses import replace

import pytest
import torch
from conftest import HostReads
from stylereel.pipeline.config import Config, Optimizer
from stylereel.pipeline.losses import gram_matrix, style_loss
from stylereel.pipeline.model import VGG19
from stylereel.pipeline.optimize import (Optimisation, Targets, content_targets, frame_losses, style_grams, stylize_frame,
                                         whole_gram)

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
    # A real drop, not any improvement: L-BFGS's first step is a short gradient step, so it gains
    # 11% here in 5 iterations (random weights) and Adam 86%.
    assert result.losses["total"] < (0.95 if optimizer == Optimizer.lbfgs else 0.5) * start
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


def test_range_term_keeps_the_optimum_inside_what_the_result_is_clamped_to(setup):
    model, content, targets = setup
    pulled = Targets(targets.content, targets.grams, warped=torch.full_like(content, 1.4), mask=torch.ones(1, 1, 24, 24))
    config = replace(CONFIG, temporal_weight=1e6)  # a pull towards values above 1, as a strong style can give
    free = stylize_frame(model, content, pulled, config=config, n_iters=8)
    bounded = stylize_frame(model, content, pulled, config=replace(config, range_weight=1e8), n_iters=8)
    assert "range" not in free.losses and bounded.losses["range"] < 1e-2 * bounded.losses["total"]

    def excess(settings: Config) -> float:  # how far the optimiser's own pixels leave [0, 1] before the clamp
        optimisation = Optimisation(model, content, pulled, settings)
        for _ in range(8):
            optimisation.step()
        return (optimisation.image - optimisation.image.clamp(0, 1)).abs().max().item()

    assert excess(replace(config, range_weight=1e8)) < 0.1 * excess(config)


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


def test_early_stop_ends_a_frame_once_the_loss_stops_improving(setup):
    model, content, targets = setup
    strict = stylize_frame(model, content, targets, config=replace(CONFIG, stop_tolerance=0.0), n_iters=30)
    assert strict.iterations == 30
    # Any improvement under 100% over 10 iterations counts as stalled: the first check (after
    # readings at 5, 10 and 15) stops it.
    loose = stylize_frame(model, content, targets, config=replace(CONFIG, stop_tolerance=1.0), n_iters=30)
    assert loose.iterations == 15
    seen = []
    stylize_frame(model, content, targets, config=replace(CONFIG, stop_tolerance=1.0, stop_window=20),
                  n_iters=30, callback=seen.append)
    assert len(seen) == 25  # readings at 5..25: the 20-iteration window first spans 5 to 25


def test_the_loop_reads_the_device_only_to_report(setup):
    model, content, targets = setup
    warped, mask = torch.rand_like(content), torch.ones(1, 1, 24, 24)
    chained = Targets(targets.content, targets.grams, warped=warped, mask=mask)
    config = replace(CONFIG, stop_tolerance=0.0)
    stylize_frame(model, content, chained, config=config, n_iters=2)  # warm up
    counted = []
    for n_iters in (10, 20):
        with HostReads() as reads:
            stylize_frame(model, content, chained, config=config, n_iters=n_iters)
        counted.append(len(reads.seen))
    # Ten more iterations cost two more reads: the loss at iterations 15 and 20, nothing per iteration.
    assert counted[1] - counted[0] == 2


def test_bf16_convolutions_give_float32_features_close_to_fp32(setup):
    model, content, _ = setup
    layers = ("conv1_1", "conv3_1", "conv5_1")
    exact = model(content, layers)
    try:
        model.set_execution(bf16=True, channels_last=True)
        rounded = model(content, layers)
        image = content.clone().requires_grad_(True)
        loss = sum(gram_matrix(feature).sum() for feature in model(image, layers).values())
        loss.backward()
    finally:
        model.set_execution(bf16=False, channels_last=False)
    for name in layers:
        assert rounded[name].dtype == torch.float32
        assert (rounded[name] - exact[name]).norm() / exact[name].norm() < 0.05
    assert image.grad.dtype == torch.float32 and torch.isfinite(image.grad).all()


def test_a_crops_whole_gram_has_the_whole_frames_value_and_their_gradient_on_the_crop():
    torch.manual_seed(0)
    features = torch.randn(2, 4, 6, 8, dtype=torch.float64, requires_grad=True)
    target = torch.randn(1, 4, 4, dtype=torch.float64)
    whole = whole_gram(features[..., 1:4, 2:7], (gram_matrix(features).detach(), 6 * 8))
    assert torch.allclose(whole, gram_matrix(features))
    (from_the_crop,) = torch.autograd.grad(style_loss(whole, target), features)
    (from_the_whole,) = torch.autograd.grad(style_loss(gram_matrix(features), target), features)
    inside = torch.zeros(features.shape, dtype=torch.bool)
    inside[..., 1:4, 2:7] = True
    assert torch.allclose(from_the_crop[inside], from_the_whole[inside])
    assert not from_the_crop[~inside].any()
    assert torch.equal(whole_gram(features, None), gram_matrix(features))  # no whole frames: the crop's own

