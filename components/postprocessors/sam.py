"""SAM mask selection: automatic SAM masks that agree with the CAM seed, OR'd with the seed."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from functools import partial
from pathlib import Path
from typing import Annotated, Any, Literal

import numpy as np
import torch

from ablate import POSTPROCESSORS, PostContext, PostState, Range

# segment_anything is imported inside functions, so that `ablate` (which imports all components) starts fast.
log = logging.getLogger(__name__)

TINY = "tiny"
ModelType = Literal["tiny", "vit_b", "vit_l", "vit_h"]  # tiny: a random-weight SAM for tests
Share = Annotated[float, Range(0, 1)]


def select_masks(seed: np.ndarray, masks: Iterable[np.ndarray], max_area: float, iou_threshold: float) -> np.ndarray:
    """The seed OR'd with every candidate mask that is small enough and overlaps it well enough.

    Args:
        seed: bool ``[H, W]`` CAM seed.
        masks: bool ``[H, W]`` candidate masks (e.g. SAM's automatic masks).
        max_area: Masks covering more than this fraction of the image are dropped (sky, background).
        iou_threshold: Masks are kept when their IoU with the seed exceeds this.

    Returns:
        bool ``[H, W]`` mask; the seed itself when no candidate is kept.
    """
    out = seed.copy()
    for mask in masks:
        if mask.sum() > max_area * mask.size:
            continue
        union = np.logical_or(mask, seed).sum()
        if union and np.logical_and(mask, seed).sum() / union > iou_threshold:
            out |= mask
    return out


def build_tiny_sam() -> Any:
    """A small SAM from the package's own blocks: 2-block, 96-wide image encoder at 256 px, 64-d prompts.

    Randomly initialised (no such weights exist); it lets the step run end to end on a CPU in seconds.
    """
    from segment_anything.modeling import ImageEncoderViT, MaskDecoder, PromptEncoder, Sam, TwoWayTransformer

    image_size, patch_size, prompt_dim = 256, 16, 64
    grid = image_size // patch_size
    return Sam(
        image_encoder=ImageEncoderViT(
            img_size=image_size,
            patch_size=patch_size,
            embed_dim=96,
            depth=2,
            num_heads=2,
            out_chans=prompt_dim,
            norm_layer=partial(torch.nn.LayerNorm, eps=1e-6),
            use_rel_pos=True,
            window_size=8,
            global_attn_indexes=(1,),
        ),
        prompt_encoder=PromptEncoder(
            embed_dim=prompt_dim,
            image_embedding_size=(grid, grid),
            input_image_size=(image_size, image_size),
            mask_in_chans=16,
        ),
        mask_decoder=MaskDecoder(
            transformer_dim=prompt_dim,
            transformer=TwoWayTransformer(depth=2, embedding_dim=prompt_dim, mlp_dim=256, num_heads=4),
            iou_head_hidden_dim=prompt_dim,
        ),
        # SAM's ImageNet pixel statistics, as in segment_anything's own builders.
        pixel_mean=[123.675, 116.28, 103.53],
        pixel_std=[58.395, 57.12, 57.375],
    )


@POSTPROCESSORS.register("sam", label="SAM")
class SamSelect:
    """SAM automatic masks overlapping the CAM seed, OR'd with the seed (the paper's future-work step).

    The seed is the mask of an earlier step (e.g. ``crf``, giving the paper's CRF+SAM) or else
    ``cams >= seed_threshold``. SAM's automatic masks larger than ``max_area`` of the image are dropped;
    those whose IoU with the seed exceeds ``iou_threshold`` are OR'd into it (see :func:`select_masks`).

    Args:
        checkpoint: Local SAM weights for ``model_type`` (e.g. Meta's ``sam_vit_b_01ec64.pth``). None keeps
            random weights (seeded with the trial seed): masks are garbage and often none pass SAM's filters,
            so the result usually equals the seed.
        model_type: ``vit_b``/``vit_l``/``vit_h`` (segment_anything's 1024 px models; vit_b takes seconds per
            image on a CPU) or ``tiny`` (see :func:`build_tiny_sam`; only for testing the pipeline).
        points_per_side: Point-prompt grid per side (SAM's default is 32; 8 keeps CPU runs short).
        pred_iou_thresh: SAM's filter on its predicted mask quality.
        stability_score_thresh: SAM's filter on mask stability under threshold changes.
        seed_threshold: CAM threshold of the seed when no earlier step set a mask (the paper's 0.3).
        max_area: Largest kept mask, as a fraction of the image.
        iou_threshold: IoU with the seed a mask must exceed. 0.3 keeps a SAM object of which the seed
            covers only a third, so SAM can complete partially activated smoke.
    """

    reads = ("cams", "mask")
    writes = ("mask",)

    def __init__(
        self,
        checkpoint: str | None = None,
        model_type: ModelType = "vit_b",
        points_per_side: Annotated[int, Range(low=1)] = 8,
        pred_iou_thresh: Share = 0.88,
        stability_score_thresh: Share = 0.95,
        seed_threshold: Share = 0.3,
        max_area: Share = 0.5,
        iou_threshold: Share = 0.3,
    ) -> None:
        if checkpoint is not None and not Path(checkpoint).is_file():
            raise ValueError(f"sam: checkpoint '{checkpoint}' does not exist or is not a file")
        self.checkpoint = checkpoint
        self.model_type = model_type
        self.points_per_side = points_per_side
        self.pred_iou_thresh = pred_iou_thresh
        self.stability_score_thresh = stability_score_thresh
        self.seed_threshold = seed_threshold
        self.max_area = max_area
        self.iou_threshold = iou_threshold
        self._generator: Any = None  # SamAutomaticMaskGenerator, built on first use and kept for the run

    @property
    def random_weights(self) -> bool:
        """Without a checkpoint the model is untrained: the harness marks the trial ``[random weights]``."""
        return self.checkpoint is None

    def __call__(self, state: PostState, ctx: PostContext) -> PostState:
        seeds = state.mask if state.mask is not None else state.cams >= self.seed_threshold
        masks = [
            select_masks(seed, self.masks(image, ctx), self.max_area, self.iou_threshold)
            for image, seed in zip(state.images, seeds, strict=True)
        ]
        return state.with_(mask=np.stack(masks))

    def masks(self, image: np.ndarray, ctx: PostContext) -> list[np.ndarray]:
        """SAM's automatic bool ``[H, W]`` masks for one uint8 ``[H, W, 3]`` image."""
        if self._generator is None:
            from segment_anything import SamAutomaticMaskGenerator

            self._generator = SamAutomaticMaskGenerator(
                self.build(ctx.seed).to(ctx.device),
                points_per_side=self.points_per_side,
                pred_iou_thresh=self.pred_iou_thresh,
                stability_score_thresh=self.stability_score_thresh,
            )
        return [m["segmentation"] for m in self._generator.generate(image)]

    def build(self, seed: int) -> Any:
        """The SAM model on the CPU in eval mode: random (seeded with ``seed``) or loaded from the checkpoint."""
        from segment_anything import sam_model_registry

        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            sam = build_tiny_sam() if self.model_type == TINY else sam_model_registry[self.model_type]()
        if self.checkpoint is None:
            log.warning("sam: no checkpoint given, '%s' has random weights; its masks are meaningless", self.model_type)
            return sam.eval()
        try:
            state_dict = torch.load(self.checkpoint, map_location="cpu", weights_only=True)
            if not isinstance(state_dict, Mapping):
                raise TypeError(f"expected a state dict, got {type(state_dict).__name__}")
            sam.load_state_dict(state_dict)
        except Exception as exc:  # any failure here means the file does not fit the architecture
            detail = " ".join(f"{type(exc).__name__}: {exc}".split())[:300]
            raise ValueError(
                f"sam: cannot load checkpoint '{self.checkpoint}' into '{self.model_type}': {detail}"
            ) from exc
        return sam.eval()
