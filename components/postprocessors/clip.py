"""CLIP prompt similarity: re-weight CAMs by how much each image patch matches smoke prompts."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Annotated, Any, Literal, get_args

import numpy as np
import torch

from ablate import POSTPROCESSORS, PostContext, PostState, Range, did_you_mean, minmax
from ablate.components.postprocessors._maps import resize

# open_clip is imported inside functions: it adds seconds to every start of `ablate`, which imports all components.
log = logging.getLogger(__name__)

Combine = Literal["multiply", "average", "gate"]
DEFAULT_PROMPTS = ["a photo of grey industrial smoke rising from factory chimneys"]
DEFAULT_NEGATIVE_PROMPTS = [
    "a photo of a factory chimney",
    "a photo of the sky",
    "a photo of clouds",
    "a photo of buildings",
]


def is_supported(name: str) -> bool:
    """Whether open_clip architecture ``name`` has open_clip's own ViT image tower and built-in text tower.

    Only that tower exposes patch tokens that share the joint space through ``visual.proj``; timm/HF towers,
    ResNets and attention-pooled (CoCa) towers are excluded, and HF text towers would need downloads.
    """
    import open_clip

    cfg = open_clip.get_model_config(name)
    if cfg is None:
        return False
    vision, text = cfg["vision_cfg"], cfg["text_cfg"]
    return (
        isinstance(vision.get("layers"), int)
        and not vision.get("timm_model_name")
        and not vision.get("attentional_pool")
        and not text.get("hf_model_name")
        and not text.get("hf_tokenizer_name")
        and not cfg.get("custom_text")
    )


def supported_models() -> list[str]:
    """Every open_clip architecture the ``clip`` step accepts (see :func:`is_supported`)."""
    import open_clip

    return [name for name in open_clip.list_models() if is_supported(name)]


def combine(cams: np.ndarray, probability: np.ndarray, mode: str, gate_threshold: float) -> np.ndarray:
    """Combine CAMs with the positive-prompt probability map and min-max renormalise each map.

    Args:
        cams: ``[N, H, W]`` CAMs in [0, 1].
        probability: ``[N, H, W]`` probability that a pixel matches a positive prompt.
        mode: ``multiply`` (cam * p), ``average`` ((cam + p) / 2) or ``gate`` (cam where p >= gate_threshold, else 0).
        gate_threshold: Probability a pixel needs to keep its CAM value in ``gate`` mode.

    Returns:
        float32 ``[N, H, W]`` maps in [0, 1]; a constant result becomes 0.
    """
    if mode == "multiply":
        out = cams * probability
    elif mode == "average":
        out = (cams + probability) / 2
    elif mode == "gate":
        out = cams * (probability >= gate_threshold)
    else:
        raise ValueError(f"clip: combine must be one of {', '.join(get_args(Combine))}, got {mode!r}")
    return minmax(out)


@POSTPROCESSORS.register("clip", label="CLIP")
class Clip:
    """CLIP text-prompt similarity of patch tokens combined with the CAM (the paper's failed CLIP step).

    Each image is resized to the model's input size; its patch tokens (not the CLS token), projected into
    the joint image-text space, are compared by cosine similarity with every positive and negative prompt.
    A softmax over all prompts gives per patch the probability of the positive prompts; that map is
    upsampled to the image and combined with the CAM (see :func:`combine`).

    Args:
        model: open_clip architecture (one of :func:`supported_models`). ``ViT-B-16`` is the paper's ViT and
            has public weights (openai, laion2b_s34b_b88k, ...); about 0.25 s per image on 2 CPU cores.
            ``ViT-B-32`` (also with public weights) is ~3.5x faster at a coarser 7x7 patch grid;
            ``ViT-S-32`` (no public weights) suits quick smoke tests.
        checkpoint: Local open_clip weights for ``model`` (``.bin``/``.pt`` state dict or ``.safetensors``).
            None keeps random weights (seeded with the trial seed): the step runs but its output is meaningless.
        prompts: Text prompts describing smoke.
        negative_prompts: Prompts for what the CAM confuses with smoke (at least one).
        combine: ``multiply``, ``average`` or ``gate``.
        gate_threshold: Positive-prompt probability needed to keep the CAM in ``gate`` mode.
        temperature: Softmax temperature over prompt similarities; None uses the model's learned one
            (1 / exp(logit_scale), 0.01 for trained CLIP).
        batch_size: Images per forward pass.
    """

    reads = ("cams",)
    writes = ("cams", "mask")

    def __init__(
        self,
        model: str = "ViT-B-16",
        checkpoint: str | None = None,
        prompts: list = DEFAULT_PROMPTS,
        negative_prompts: list = DEFAULT_NEGATIVE_PROMPTS,
        combine: Combine = "multiply",
        gate_threshold: Annotated[float, Range(0, 1)] = 0.5,
        temperature: Annotated[float, Range(low=0, low_open=True)] | None = None,
        batch_size: Annotated[int, Range(low=1)] = 16,
    ) -> None:
        if not is_supported(model):
            supported = supported_models()
            hint = did_you_mean(model, supported)
            raise ValueError(f"clip: model '{model}' is not a supported open_clip ViT{hint}; supported: {supported}")
        if checkpoint is not None and not Path(checkpoint).is_file():
            raise ValueError(f"clip: checkpoint '{checkpoint}' does not exist or is not a file")
        # Negatives are required too: without them the softmax over prompts is 1 everywhere.
        for key, texts in (("prompts", prompts), ("negative_prompts", negative_prompts)):
            if not texts or not all(isinstance(t, str) and t.strip() for t in texts):
                raise ValueError(f"clip: {key} must be a non-empty list of non-empty strings, got {texts!r}")
        self.model = model
        self.checkpoint = checkpoint
        self.prompts = list(prompts)
        self.negative_prompts = list(negative_prompts)
        self.combine = combine
        self.gate_threshold = gate_threshold
        self.temperature = temperature
        self.batch_size = batch_size
        self._net: Any = None  # the open_clip model, built on first use and kept for the whole run
        self._text: torch.Tensor | None = None  # unit-norm prompt embeddings, positives first

    @property
    def random_weights(self) -> bool:
        """Without a checkpoint the model is untrained: the harness marks the trial ``[random weights]``."""
        return self.checkpoint is None

    def __call__(self, state: PostState, ctx: PostContext) -> PostState:
        cams = combine(state.cams, self.probability(state.images, ctx), self.combine, self.gate_threshold)
        return state.with_(cams=cams, mask=None)  # an earlier mask no longer matches the new CAMs

    def probability(self, images: np.ndarray, ctx: PostContext) -> np.ndarray:
        """Per-pixel probability ``[N, H, W]`` that its patch matches a positive rather than a negative prompt."""
        params = {
            "model": self.model,
            "checkpoint": self.checkpoint,
            "prompts": self.prompts,
            "negative_prompts": self.negative_prompts,
            "temperature": self.temperature,
        }
        # Cached at patch resolution: tiny, and shared by combine modes and gate thresholds.
        grid = ctx.cached("clip-patch-probability", params, lambda: self.patch_probability(images, ctx))
        return resize(grid, images.shape[1:3])

    def patch_probability(self, images: np.ndarray, ctx: PostContext) -> np.ndarray:
        """Positive-prompt probability per patch, float32 ``[N, h, w]`` on the model's patch grid."""
        import open_clip

        net, text = self._build(ctx)
        cfg = open_clip.get_model_preprocess_cfg(net)
        size = tuple(net.visual.image_size)
        grid = (size[0] // net.visual.patch_size[0], size[1] // net.visual.patch_size[1])
        mean = torch.tensor(cfg["mean"], device=ctx.device).view(1, 3, 1, 1)
        std = torch.tensor(cfg["std"], device=ctx.device).view(1, 3, 1, 1)
        scale = 1.0 / self.temperature if self.temperature is not None else net.logit_scale.exp()
        n_pos = len(self.prompts)
        out = []
        with torch.no_grad():
            for start in range(0, len(images), self.batch_size):
                batch = images[start : start + self.batch_size].transpose(0, 3, 1, 2).astype(np.float32) / 255.0
                x = torch.from_numpy(resize(batch, size)).to(ctx.device)
                _, tokens = net.visual((x - mean) / std)  # tokens: [B, h*w, width], CLS excluded
                patches = torch.nn.functional.normalize(tokens @ net.visual.proj, dim=-1)
                probs = (scale * patches @ text.T).softmax(dim=-1)[..., :n_pos].sum(dim=-1)
                out.append(probs.reshape(len(batch), *grid).float().cpu().numpy())
        return np.concatenate(out)

    def _build(self, ctx: PostContext) -> tuple[Any, torch.Tensor]:
        """The model and prompt embeddings, created on first use (random weights seeded with ``ctx.seed``)."""
        if self._net is None or self._text is None:
            import open_clip

            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(ctx.seed)
                net = open_clip.create_model(self.model, pretrained=None)
            if self.checkpoint is None:
                log.warning("clip: no checkpoint given, '%s' has random weights; its maps are meaningless", self.model)
            else:
                try:
                    open_clip.load_checkpoint(net, self.checkpoint, strict=True)
                except Exception as exc:  # any failure here means the file does not fit the architecture
                    detail = " ".join(f"{type(exc).__name__}: {exc}".split())[:300]
                    raise ValueError(
                        f"clip: cannot load checkpoint '{self.checkpoint}' into '{self.model}': {detail}"
                    ) from exc
            net = net.to(ctx.device).eval()
            net.visual.output_tokens = True  # forward then returns (pooled, patch tokens)
            tokenizer = open_clip.get_tokenizer(self.model)
            with torch.no_grad():
                tokens = tokenizer(self.prompts + self.negative_prompts).to(ctx.device)
                self._text = net.encode_text(tokens, normalize=True)
            self._net = net
        return self._net, self._text
