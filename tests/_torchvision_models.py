"""Small, randomly initialised torchvision classifiers for the model matrix (issue 14).

Each keeps its family's structure (in-place ReLUs, residual additions, batch norm, concatenations,
squeeze-excitation, channels-last blocks, class tokens) at reduced widths and depths, so that every
method runs on all of them in about a minute of CPU. Batch-norm statistics are perturbed so that
eval mode is not the identity, and convolution biases (torchvision starts ConvNeXt's at 0) are drawn
small: with zero biases ConvNeXt's stem (a convolution, then a LayerNorm) is scale-invariant, so its
output jumps between the black image and any other and no path method can be complete.
"""
import torch
from torch import nn
from torchvision import models
from torchvision.models.convnext import CNBlockConfig
from torchvision.models.vgg import make_layers

K = 5
SIZE = 32
#: image sizes where 32 pixels leave no map with more than one position at the network's end
SIZES = {"mobilenet_v3_small": 64}


def _vgg11():
    model = models.VGG(make_layers([8, "M", 16, "M", 32, 32, "M", 32, 32, "M"]), num_classes=K)
    model.avgpool = nn.AdaptiveAvgPool2d(2)
    model.classifier = nn.Sequential(nn.Linear(32 * 4, 32), nn.ReLU(True), nn.Dropout(), nn.Linear(32, 32),
                                     nn.ReLU(True), nn.Dropout(), nn.Linear(32, K))
    return model


def _vit():
    model = models.VisionTransformer(image_size=SIZE, patch_size=8, num_layers=2, num_heads=2, hidden_dim=16,
                                     mlp_dim=32, num_classes=K)
    nn.init.normal_(model.heads.head.weight, std=0.5)   # torchvision starts the head (and the class token) at 0
    nn.init.normal_(model.class_token, std=0.5)
    return model


FACTORIES = {
    "resnet18": lambda: models.resnet18(num_classes=K),
    "vgg11": _vgg11,
    "densenet121": lambda: models.DenseNet(growth_rate=8, block_config=(2, 2), num_init_features=16, bn_size=2,
                                           num_classes=K),
    "mobilenet_v3_small": lambda: models.mobilenet_v3_small(num_classes=K, width_mult=0.25),
    "convnext_tiny": lambda: models.ConvNeXt([CNBlockConfig(16, 32, 1), CNBlockConfig(32, None, 1)], num_classes=K),
    "vit": _vit,
    "swin_t": lambda: models.SwinTransformer(patch_size=[4, 4], embed_dim=8, depths=[1, 1], num_heads=[1, 2],
                                             window_size=[2, 2], num_classes=K),
}
NAMES = tuple(FACTORIES)
#: architectures built only from ReLUs, max / average pools, batch norm and linear maps (FullGrad is complete)
PIECEWISE_LINEAR = ("resnet18", "vgg11", "densenet121")
#: the layer the detection must find: the last map of a CNN; for the transformers, the pre-norm of the
#: last attention block (the input of its queries; Swin's is channels-last, read by _core.layouts)
CAM_LAYERS = {"resnet18": "layer3", "vgg11": "features", "densenet121": "features",
              "mobilenet_v3_small": "features", "convnext_tiny": "features",
              "vit": "encoder.layers.encoder_layer_1.ln_1", "swin_t": "features.3.0.norm1"}


def build(name: str, seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    model = FACTORIES[name]()
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.modules.batchnorm._BatchNorm):
                m.running_mean.uniform_(-0.1, 0.1)
                m.running_var.uniform_(0.5, 1.5)
            if isinstance(m, nn.Conv2d) and m.bias is not None:
                m.bias.uniform_(-0.1, 0.1)
    return model.eval()


def images(n: int = 2, seed: int = 0, name: str | None = None) -> torch.Tensor:
    size = SIZES.get(name, SIZE)
    return torch.rand(n, 3, size, size, generator=torch.Generator().manual_seed(seed))
