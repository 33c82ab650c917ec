"""Contrast-CAM's sign: the authors' code pools the gradients as they are; lecture 23's slide pools their negative.

The channel weights are linear in the gradients, so the slide's map is the package's map without the ReLU,
negated, then clamped: ``(-contrast_cam(model, x, relu=False)).clamp_min(0)``. Exactly so at the CAM layer's
resolution; after bilinear upsampling the ReLU comes after the interpolation instead of before (the two orders
agree wherever the neighbouring cells share a sign, and ReLU-then-upsample is never smaller, by Jensen).
"""
import torch
import torch.nn.functional as F

from inferml_course import explain

from _explain_models import TwoChannelModel, images, small_cnn, two_squares as _two_squares


def test_negated_gradient_contrast_cam_by_hand():
    """Same resolution (upsampling is the identity): the slide's map ReLU(-sum_k alpha_k A_k), computed by hand."""
    model = TwoChannelModel().double().eval()
    x = _two_squares()
    p = torch.softmax(model(x)[0], 0)
    a0, a1 = x[0, 0], x[0, 1]
    for q in range(3):
        g = p.clone()
        g[q] -= 1                                           # dCE(z, Q)/dz = p - onehot(Q)
        alpha0, alpha1 = (g[0] - g[1]) / 64, (g[1] - g[0]) / 64
        lecture = (-(alpha0 * a0 + alpha1 * a1)).clamp_min(0)
        authors = (alpha0 * a0 + alpha1 * a1).clamp_min(0)
        negated = (-explain.contrast_cam(model, x, contrast=q, relu=False)).clamp_min(0)[0]
        assert torch.allclose(negated, lecture), q
        assert torch.allclose(explain.contrast_cam(model, x, contrast=q)[0], authors), q
        # the two maps split the signed map between them: authors - lecture = the map before the ReLU
        assert torch.allclose(authors - lecture, explain.contrast_cam(model, x, contrast=q, relu=False)[0])


def test_negated_gradient_contrast_cam_on_a_cnn_with_upsampling():
    model = small_cnn().eval()
    x = images(2)
    layer = model.cam_layer
    store = {}
    handle = layer.register_forward_hook(lambda m, i, o: store.__setitem__("a", o))
    try:
        z = model(x)
    finally:
        handle.remove()
    q = z.argsort(1, descending=True)[:, 1]                # the default contrast: the runner-up
    (grad_a,) = torch.autograd.grad(F.cross_entropy(z, q, reduction="sum"), store["a"])
    signed = (grad_a.mean((2, 3), keepdim=True) * store["a"]).sum(1, keepdim=True).detach()   # (N, 1, h, w)
    up = lambda m: F.interpolate(m, size=x.shape[-2:], mode="bilinear", align_corners=False)[:, 0]  # noqa: E731
    negated = (-explain.contrast_cam(model, x, relu=False)).clamp_min(0)
    assert torch.allclose(negated, up(-signed).clamp_min(0), atol=1e-10)      # linear in the gradients
    lecture = up((-signed).clamp_min(0))                                     # the slide: ReLU, then upsample
    assert torch.all(lecture >= negated - 1e-12)                             # Jensen: never smaller
    assert torch.allclose(explain.contrast_cam(model, x), up(signed.clamp_min(0)), atol=1e-10)
