"""Warping, flow, occlusion masks and scene-cut evidence on synthetic frames."""

import cv2
import numpy as np
import pytest
import torch
from stylereel.pipeline.flow import occlusion_mask, optical_flow, unlinked_fraction, warp, warp_sharp


def _texture(h: int, w: int, *, seed: int) -> np.ndarray:
    """Smooth grey texture (blurred noise stretched to 20..180) that flow can track."""
    noise = np.random.default_rng(seed).random((h, w)).astype(np.float32)
    smooth = cv2.GaussianBlur(noise, (0, 0), 1.5)
    smooth = (smooth - smooth.min()) / (smooth.max() - smooth.min()) * 160 + 20
    return np.ascontiguousarray(np.repeat(smooth[..., None], 3, axis=2).astype(np.uint8))


def _square_frames(shift: int, size: int = 48) -> tuple[np.ndarray, np.ndarray]:
    """A textured background with a bright square that moves `shift` pixels right."""
    background = _texture(size, size, seed=0)
    frames = []
    for x0 in (12, 12 + shift):
        frame = background.copy()
        frame[16:32, x0:x0 + 16] = (230, 200, 60)
        frames.append(frame)
    return frames[0], frames[1]


def test_zero_flow_is_identity():
    torch.manual_seed(0)
    image = torch.rand(1, 3, 6, 9)
    torch.testing.assert_close(warp(image, torch.zeros(1, 2, 6, 9)), image)


def test_one_pixel_flow_shifts_a_known_pattern():
    image = torch.arange(20.0).reshape(1, 1, 4, 5)
    flow = torch.zeros(1, 2, 4, 5)
    flow[:, 0] = 1.0  # sample one pixel to the right
    shifted = warp(image, flow)
    torch.testing.assert_close(shifted[..., :-1], image[..., 1:])
    flow = torch.zeros(1, 2, 4, 5)
    flow[:, 1] = -1.0  # sample one pixel above
    torch.testing.assert_close(warp(image, flow)[..., 1:, :], image[..., :-1, :])


def test_sharp_warp_moves_pixels_where_warp_does_at_whole_pixel_shifts():
    torch.manual_seed(0)
    image = torch.rand(1, 3, 6, 9)
    torch.testing.assert_close(warp_sharp(image, torch.zeros(1, 2, 6, 9)), image)
    flow = torch.zeros(1, 2, 6, 9)
    flow[:, 0], flow[:, 1] = 1.0, -2.0
    torch.testing.assert_close(warp_sharp(image, flow)[..., 2:, :-1], warp(image, flow)[..., 2:, :-1])


def test_sharp_warp_keeps_an_edge_that_repeated_bilinear_warps_blur_and_stays_in_range():
    """Half a pixel right, then back, ten times over: the frame ends where it started, so what
    is left of the step is what the sampling kept of it."""
    step = torch.zeros(1, 3, 8, 16)
    step[..., 8:] = 1.0
    there, back = torch.zeros(1, 2, 8, 16), torch.zeros(1, 2, 8, 16)
    there[:, 0], back[:, 0] = 0.5, -0.5
    bilinear, cubic = step, step
    for _ in range(10):
        bilinear, cubic = warp(warp(bilinear, there), back), warp_sharp(warp_sharp(cubic, there), back)
    inside = (..., slice(4, 12))  # away from the border the flow leaves
    cubic_error, bilinear_error = (float((image - step)[inside].abs().mean()) for image in (cubic, bilinear))
    assert cubic_error < 0.6 * bilinear_error
    assert 0 <= float(cubic.min()) and float(cubic.max()) <= 1


def test_warp_does_not_modify_its_input():
    image = torch.rand(1, 3, 4, 4)
    copy = image.clone()
    warp(image, torch.ones(1, 2, 4, 4))
    assert torch.equal(image, copy)


def test_optical_flow_shape_and_direction():
    first, second = _square_frames(shift=4)
    flow = optical_flow(first, second)
    assert flow.shape == (1, 2, 48, 48) and flow.dtype == torch.float32
    # Inside the square the forward flow points right by about 4 pixels.
    assert flow[0, 0, 20:28, 16:24].mean().item() == pytest.approx(4.0, abs=1.0)


@pytest.mark.parametrize("method", ["dis", "farneback"])
def test_optical_flow_methods_agree_on_a_pan(method):
    texture = _texture(64, 80, seed=1)
    first, second = texture[:, 4:68], texture[:, 2:66]  # content moves 2 px right
    flow = optical_flow(first, second, method=method)
    assert flow[0, 0, 16:48, 16:48].median().item() == pytest.approx(2.0, abs=0.5)


def test_occlusion_mask_marks_the_revealed_region_of_a_moving_square():
    first, second = _square_frames(shift=6)
    forward, backward = optical_flow(first, second), optical_flow(second, first)
    mask = occlusion_mask(forward, backward)
    assert mask.shape == (1, 1, 48, 48)
    revealed = mask[0, 0, 18:30, 13:17]  # background the square uncovered at its trailing edge
    static = mask[0, 0, 36:46, 2:46]  # background far from the square
    assert revealed.mean().item() < 0.5
    assert static.mean().item() > 0.9


def test_occlusion_mask_all_trusted_for_zero_motion():
    zero = torch.zeros(1, 2, 8, 8)
    assert occlusion_mask(zero, zero).min().item() == 1.0


def test_unlinked_fraction_separates_a_cut_from_a_pan():
    first, second = _square_frames(shift=2)
    to_tensor = lambda a: torch.from_numpy(a).permute(2, 0, 1)[None].float() / 255
    forward, backward = optical_flow(first, second), optical_flow(second, first)
    pan = unlinked_fraction(to_tensor(first), to_tensor(second), backward, occlusion_mask(forward, backward))
    rng = np.random.default_rng(5)
    other = np.ascontiguousarray((rng.random((48, 48, 3)) * 255).astype(np.uint8))
    forward, backward = optical_flow(first, other), optical_flow(other, first)
    cut = unlinked_fraction(to_tensor(first), to_tensor(other), backward, occlusion_mask(forward, backward))
    assert pan < 0.25 < 0.5 < cut  # 0.204 with full-resolution DIS (0.2 was the bound for the half-resolution flow)


def test_dis_flow_of_a_one_pixel_pan_is_accurate_to_a_few_hundredths_of_a_pixel():
    """DIS run down to full resolution: a textured frame moved 1 px gives a flow of 1 px everywhere
    but the entering column (the preset alone, stopping at half resolution, is off by ~0.03 px)."""
    rng = np.random.default_rng(1)
    texture = torch.nn.functional.interpolate(torch.from_numpy(rng.random((1, 3, 36, 64))).float(), size=(72, 129),
                                              mode="bicubic", align_corners=False)
    wide = (texture[0].clamp(0, 1).permute(1, 2, 0).numpy() * 255).astype(np.uint8)
    first, second = np.ascontiguousarray(wide[:, :128]), np.ascontiguousarray(wide[:, 1:])
    backward = optical_flow(second, first)[0, :, 4:-4, 4:-4]  # t -> t-1: content came from x + 1
    assert abs(float(backward[0].mean()) - 1.0) < 0.01
    assert float(backward[0].std()) < 0.005 and float(backward[1].abs().mean()) < 0.01
