"""The sync-free L-BFGS: torch's steps, rejected curvature pairs, and no reads from the device."""

import pytest
import torch
from conftest import HostReads
from stylereel.pipeline.lbfgs import LBFGS


def _problem(n: int = 30):
    """A smooth convex function of n variables: a random quadratic plus a small quartic."""
    generator = torch.Generator().manual_seed(0)
    a = torch.randn(n, n, generator=generator, dtype=torch.float64)
    a = a @ a.T + torch.eye(n, dtype=torch.float64)
    b = torch.randn(n, generator=generator, dtype=torch.float64)
    return lambda x: 0.5 * x @ a @ x - b @ x + 0.01 * x.pow(4).sum()


def _gradient_of(optimizer, loss):
    """A closure's body: clear the gradient, backpropagate `loss`, return it."""
    optimizer.zero_grad()
    loss.backward()
    return loss


def _minimise(make_optimizer, f, n_steps: int, n: int = 30) -> tuple[list[float], torch.Tensor]:
    x = torch.zeros(n, dtype=torch.float64, requires_grad=True)
    optimizer = make_optimizer(x)

    def closure():
        return _gradient_of(optimizer, f(x))

    losses = [float(optimizer.step(closure).detach()) for _ in range(n_steps)]
    return losses, x.detach()


@pytest.mark.parametrize("history", [5, 50])
def test_takes_the_same_steps_as_torch_lbfgs(history):
    f = _problem()
    ours, x_ours = _minimise(lambda x: LBFGS(x, lr=0.8, history_size=history), f, 25)
    theirs, x_theirs = _minimise(lambda x: torch.optim.LBFGS([x], lr=0.8, max_iter=1, history_size=history), f, 25)
    assert ours == pytest.approx(theirs, rel=1e-9, abs=1e-12)
    torch.testing.assert_close(x_ours, x_theirs, rtol=1e-9, atol=1e-12)
    assert ours[-1] < ours[1]  # and it minimises


def test_pair_with_negative_curvature_gets_no_weight():
    x = torch.ones(4, dtype=torch.float64, requires_grad=True)
    optimizer = LBFGS(x, history_size=3)

    def closure():
        return _gradient_of(optimizer, -x.pow(2).sum())  # concave: y.s < 0 for every pair

    for _ in range(5):
        optimizer.step(closure)
    assert torch.equal(optimizer.rho, torch.zeros(3, dtype=torch.float64))
    assert torch.isfinite(x).all() and optimizer.scale.item() == 1.0


def test_steps_stay_short_until_a_curvature_pair_is_kept():
    """On a concave start with large gradients (as a style loss has, 1e5 per pixel) the first pair
    is rejected; torch then steps along the raw gradient times lr (here 2e5 away). Ours keeps the
    first step's length (at most lr) until a pair is kept, then uses the curvature as torch does."""
    def positions(make_optimizer, n_steps):
        x = torch.ones(1, dtype=torch.float64, requires_grad=True)
        optimizer = make_optimizer(x)
        seen = []
        for _ in range(n_steps):
            optimizer.step(lambda: _gradient_of(optimizer, -0.5e5 * x.pow(2).sum()))
            seen.append(float(x.detach()))
        return seen, optimizer

    ours, optimizer = positions(lambda x: LBFGS(x, lr=1.0), 3)
    assert ours == pytest.approx([2.0, 3.0, 4.0])
    assert not bool(optimizer.curved)
    theirs, _ = positions(lambda x: torch.optim.LBFGS([x], lr=1.0, max_iter=1), 2)
    assert theirs[-1] > 1e5  # the step ours avoids


def test_a_known_step_length_makes_the_first_step_a_full_one():
    """On f = a/2 |x - c|^2 the curvature pair gives the step length 1/a, with which one step lands
    on c; a start told that length gets there in one step, where a cold start probes first."""
    a, c = 4.0, torch.tensor([1.0, -2.0, 3.0], dtype=torch.float64)

    def run(step_length, n_steps):
        x = torch.zeros(3, dtype=torch.float64, requires_grad=True)
        optimizer = LBFGS(x, step_length=step_length)
        for _ in range(n_steps):
            optimizer.step(lambda: _gradient_of(optimizer, 0.5 * a * (x - c).pow(2).sum()))
        return x.detach(), optimizer.step_length()

    cold, learned = run(None, 2)
    assert float(learned) == pytest.approx(1 / a)
    assert torch.allclose(cold, c)  # the second step, on the kept pair, lands on c
    probed, _ = run(None, 1)
    assert not torch.allclose(probed, c, atol=0.1)
    warm, _ = run(learned, 1)
    assert torch.allclose(warm, c)


def test_a_step_length_of_zero_is_a_cold_start():
    f = _problem()
    assert float(LBFGS(torch.zeros(1, requires_grad=True)).step_length()) == 0.0  # nothing kept yet
    cold, x_cold = _minimise(lambda x: LBFGS(x), f, 6)
    told, x_told = _minimise(lambda x: LBFGS(x, step_length=torch.zeros((), dtype=torch.float64)), f, 6)
    assert cold == told and torch.equal(x_cold, x_told)


@pytest.mark.parametrize("step_length", [None, 0.05])
def test_a_step_reads_nothing_back_from_the_device(step_length):
    f = _problem()
    x = torch.zeros(30, dtype=torch.float64, requires_grad=True)
    known = None if step_length is None else torch.tensor(step_length, dtype=torch.float64)
    optimizer = LBFGS(x, history_size=4, step_length=known)

    def closure():
        return _gradient_of(optimizer, f(x))

    with HostReads() as reads:
        for _ in range(8):  # past the first step and around the history ring
            optimizer.step(closure)
    assert reads.seen == []
    # The mode does see host reads: the same check flags torch's own L-BFGS.
    reference = torch.optim.LBFGS([x], max_iter=1)
    with HostReads() as reads:
        reference.step(closure)
        reference.step(closure)
    assert reads.seen


def test_refuses_a_tensor_without_grad():
    with pytest.raises(ValueError, match="requires grad"):
        LBFGS(torch.zeros(3))
