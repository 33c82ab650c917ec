"""Tiny, randomly initialised timm and Hugging Face classifiers for the ecosystem model matrix (issue 29).

Nothing is downloaded: timm models come from ``timm.create_model(name, pretrained=False, ...)`` with
reduced widths and depths, Hugging Face models from their config objects, and every model is wrapped as
a user would: timm's behind a ``Normalize`` (``nn.Sequential``, as the README shows), Hugging Face's with
:func:`inferml_course.models.as_classifier` (it returns ``ImageClassifierOutput``). Batch-norm statistics
are perturbed (eval mode is then not the identity) and heads and class tokens drawn with a larger scale,
so that the logits differ between classes. 32 x 32 images, K classes.
"""
import torch
from torch import nn

from inferml_course.models import Normalize, as_classifier

K = 5
SIZE = 32
#: image sizes where 32 pixels leave no map with more than one position at the network's end (none here)
SIZES = {}
MEAN, STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
#: timm and transformers ship their own LayerNorm-free structure checks; both must be importable
ECOSYSTEM_REQUIRES = ("timm", "transformers")


def _normalized(model: nn.Module) -> nn.Module:
    norm = Normalize(3)
    norm.mean.copy_(torch.tensor(MEAN))
    norm.std.copy_(torch.tensor(STD))
    return nn.Sequential(norm, model)


def _timm(name, **kwargs):
    import timm

    return _normalized(timm.create_model(name, pretrained=False, num_classes=K, **kwargs))


def _timm_efficientnet():
    """timm's EfficientNet class with three MBConv stages (depthwise-separable, inverted residuals with
    squeeze-excitation, SiLU) at widths 8-24: total stride 8, so a 4 x 4 map at 32 pixels (timm's
    ``test_efficientnet`` is 1 x 1 there and 16 times larger)."""
    from timm.models._efficientnet_builder import decode_arch_def
    from timm.models.efficientnet import EfficientNet

    arch = [["ds_r1_k3_s1_e1_c8"], ["ir_r1_k3_s2_e3_c16_se0.25"], ["ir_r1_k5_s2_e3_c24_se0.25"]]
    return _normalized(EfficientNet(decode_arch_def(arch), num_classes=K, stem_size=8, num_features=32))


_VIT = dict(img_size=SIZE, patch_size=8, embed_dim=16, depth=2, num_heads=2, mlp_ratio=2.0)


def _hf_vit():
    from transformers import ViTConfig, ViTForImageClassification

    config = ViTConfig(image_size=SIZE, patch_size=8, hidden_size=16, num_hidden_layers=2, num_attention_heads=2,
                       intermediate_size=32, num_labels=K)
    return as_classifier(ViTForImageClassification(config), normalize=(MEAN, STD))


def _hf_swin():
    from transformers import SwinConfig, SwinForImageClassification

    config = SwinConfig(image_size=SIZE, patch_size=4, embed_dim=8, depths=[1, 1], num_heads=[1, 2], window_size=4,
                        num_labels=K)
    return as_classifier(SwinForImageClassification(config), normalize=(MEAN, STD))


def _hf_convnext():
    from transformers import ConvNextConfig, ConvNextForImageClassification

    config = ConvNextConfig(num_channels=3, patch_size=2, num_stages=2, layer_scale_init_value=1.0, hidden_sizes=[8, 16], depths=[1, 1],
                            num_labels=K)
    return as_classifier(ConvNextForImageClassification(config), normalize=(MEAN, STD))


FACTORIES = {
    "timm_resnet": lambda: _timm("resnet18", channels=(8, 16, 32, 64), stem_width=8, zero_init_last=False),
    "timm_efficientnet": _timm_efficientnet,
    "timm_convnext": lambda: _timm("convnext_atto", dims=(8, 16, 24, 32), depths=(1, 1, 1, 1),
                                         ls_init_value=1.0),
    "timm_vit": lambda: _timm("vit_tiny_patch16_224", **_VIT),
    "timm_deit": lambda: _timm("deit_tiny_patch16_224", **_VIT),
    "timm_deit_distilled": lambda: _timm("deit_tiny_distilled_patch16_224", **_VIT),
    "timm_swin": lambda: _timm("swin_tiny_patch4_window7_224", img_size=SIZE, embed_dim=8, depths=(1, 1),
                               num_heads=(1, 2), window_size=4, mlp_ratio=2.0),
    "hf_vit": _hf_vit,
    "hf_swin": _hf_swin,
    "hf_convnext": _hf_convnext,
}
NAMES = tuple(FACTORIES)
#: the input of the last attention block's query (the pre-norm before its attention): what the search must find
CAM_LAYERS = {
    "timm_vit": "1.blocks.1.norm1", "timm_deit": "1.blocks.1.norm1", "timm_deit_distilled": "1.blocks.1.norm1",
    "timm_swin": "1.layers.1.blocks.0.norm1",
    "hf_vit": "model.vit.layers.1.layernorm_before",
    "hf_swin": "model.swin.encoder.layers.1.blocks.0.layernorm_before",
}
#: the patch embeddings and stems: the layers at the input that the search must never pick
INPUT_LAYERS = {
    "timm_resnet": ("1.conv1", "1.bn1", "1.act1", "1.maxpool"), "timm_efficientnet": ("1.conv_stem", "1.bn1"),
    "timm_convnext": ("1.stem",), "timm_vit": ("1.patch_embed",), "timm_deit": ("1.patch_embed",),
    "timm_deit_distilled": ("1.patch_embed",), "timm_swin": ("1.patch_embed",),
    "hf_vit": ("model.vit.embeddings",), "hf_swin": ("model.swin.embeddings",),
    "hf_convnext": ("model.convnext.embeddings",),
}
#: models whose logits combine several heads, and the heads (what classifier= takes)
HEADS = {"timm_deit_distilled": ("1.head", "1.head_dist")}


def build(name: str, seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    model = FACTORIES[name]()
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.running_mean is not None:
                m.running_mean.uniform_(-0.1, 0.1)
                m.running_var.uniform_(0.5, 1.5)
            if isinstance(m, nn.Linear) and m.out_features == K:
                nn.init.normal_(m.weight, std=0.5)   # timm starts ViT heads at 0, HF at std 0.02
                if m.bias is not None:
                    m.bias.uniform_(-0.1, 0.1)
        for name_, p in model.named_parameters():
            if name_.endswith(("cls_token", "dist_token", "embeddings.cls_token")):
                nn.init.normal_(p, std=0.5)
    return model.eval()


def images(n: int = 2, seed: int = 0, name: str | None = None) -> torch.Tensor:
    size = SIZES.get(name, SIZE)
    return torch.rand(n, 3, size, size, generator=torch.Generator().manual_seed(seed))
