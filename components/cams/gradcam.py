"""Grad-CAM."""

import torch

from ablate import CAMS


@CAMS.register("gradcam")
def gradcam(target_class: int = 1):
    """Grad-CAM on a chosen layer (default: the ViT's last block norm1 / the CNN's last feature map).

    Written on torch autograd rather than the `grad-cam` package: the harness needs batched
    tensors for token layers of any input size, which that package only offers through
    numpy post-processing we would undo.
    """

    def method(network, images: torch.Tensor, layer: str | None) -> torch.Tensor:
        module = network.backbone.cam_layer(layer)
        captured = []
        handle = module.register_forward_hook(lambda _m, _i, output: captured.append(output))
        try:
            with torch.enable_grad():
                images = images.detach().requires_grad_(True)  # builds a graph even when weights are frozen
                score = network(images).logits[:, target_class].sum()
                activation = captured[-1]
                (gradient,) = torch.autograd.grad(score, activation)
        finally:
            handle.remove()
        activation = network.backbone.to_map(activation.detach(), images)
        gradient = network.backbone.to_map(gradient, images)
        weights = gradient.mean(dim=(2, 3), keepdim=True)
        return (weights * activation).sum(dim=1)

    return method
