"""A tiny random backbone for fast pipeline tests (not a real feature extractor).

``SOURCE`` registers it, as ``"tiny-test"``, through the public API when
executed (once per process); tests run it in-process with :func:`register` and
prepend it to scripts they start as subprocesses.
"""

SOURCE = '''
import torch
from fashionrec.models import BackboneConfig, Preprocessing, list_backbones, register_backbone

def _build_tiny(weights_path):
    torch.manual_seed(0)
    net = torch.nn.Sequential(
        torch.nn.Conv2d(3, 8, 3, stride=2), torch.nn.ReLU(),
        torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(),
    )
    return net.eval(), "tiny-test:seed0"

if "tiny-test" not in [c.name for c in list_backbones()]:
    register_backbone(BackboneConfig(
        name="tiny-test", dim=8,
        preprocessing=Preprocessing(input_size=32, resize_size=36),
        weights="random, seed 0", licence="n/a", description="test backbone", build=_build_tiny,
    ))
'''


def register() -> None:
    exec(SOURCE, {})
