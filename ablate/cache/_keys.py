"""The stage cache's keys: for every stage of the trial path, everything its entries depend on.

Each key holds the config parts a stage reads, the keys of the stages it builds on (a CAM set's key holds its
model's key), and the fingerprint of the code that computes it (:func:`ablate.cache._code.code_fingerprint`): the
harness modules of the stage and the module of each component it uses. This module is the one place keys are
made, so what invalidates an entry is read here.
"""

from __future__ import annotations

import functools
import hashlib
from pathlib import Path
from typing import Any

from ablate._registries import (
    ALL,
    BACKBONES,
    CAMS,
    DATASETS,
    DISTANCES,
    HEADS,
    LEVELS,
    METRICS,
    PARADIGMS,
    POSTPROCESSORS,
    PRETRAINERS,
    PROJECTIONS,
    SEGMENTERS,
)
from ablate.cache._code import code_fingerprint
from ablate.config._resolve import COMPONENT_SLOTS, get_dotted
from ablate.config._schema import NetworkConfig, TrialConfig, plain

#: Harness modules whose code decides a trained model (stage ``model``, ``pretrained``, ``frozen_outputs``).
TRAINING_MODULES = (
    "ablate.pipeline._data",
    "ablate.pipeline._models",
    "ablate.pipeline._paradigm",
    "ablate.pipeline._loop",
    "ablate.pipeline._pretrain",
    "ablate.pipeline._train",
    "ablate.pipeline._transfer",
)
#: ... the CAMs of a trained model, the post-processing of CAMs, and stage 3's segmenter.
CAM_MODULES = ("ablate.pipeline._cams",)
POSTPROCESS_MODULES = ("ablate.pipeline._postprocess",)
SEGMENT_MODULES = ("ablate.pipeline._segment", *TRAINING_MODULES)
#: The modules behind a trial's numbers (a stored trial records their fingerprints).
TRIAL_MODULES = tuple(
    dict.fromkeys((*TRAINING_MODULES, *CAM_MODULES, *POSTPROCESS_MODULES, *SEGMENT_MODULES, "ablate.pipeline._metrics"))
)


@functools.lru_cache(maxsize=64)
def _digest(path: str, mtime_ns: int, size: int) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()[:20]


def file_digest(path: str | None) -> str | None:
    """Content hash of a weights file, so replacing the file invalidates networks trained from it."""
    if not path:
        return None
    stat = Path(path).stat()
    return _digest(str(Path(path).resolve()), stat.st_mtime_ns, stat.st_size)


def paradigm_part(config: TrialConfig, uses_transfer: bool) -> dict[str, Any]:
    """The paradigm's part of a model's key (the transfer section only when it is used)."""
    return {"paradigm": config.paradigm, "transfer": plain(config.transfer) if uses_transfer else None}


def model_key(config: TrialConfig, data_fingerprint: str, roles: tuple[str, ...], extra: Any = None) -> dict[str, Any]:
    """Everything the networks of ``roles`` depend on, their code included; ``extra`` is the paradigm's own part
    (None: a network trained alone, the same under every paradigm)."""
    networks = {role: config.network(role) for role in roles}
    components = [(DATASETS, config.data["name"])]
    if extra is not None:
        components.append((PARADIGMS, config.paradigm["name"]))
    for network in networks.values():
        components += [(BACKBONES, network.backbone["name"]), (HEADS, network.head["name"])]
        if network.pretrain is not None:
            components.append((PRETRAINERS, network.pretrain["name"]))
    if isinstance(extra, dict) and extra.get("transfer"):
        transfer = config.transfer
        components += [(LEVELS, transfer.level["name"]), (DISTANCES, transfer.distance["name"])]
        components += [(PROJECTIONS, transfer.projection["name"])]
    return {
        "code": code_fingerprint(TRAINING_MODULES, components),
        "data": config.data,
        "data_fingerprint": data_fingerprint,
        "networks": {role: plain(network) for role, network in networks.items()},
        "checkpoints": {role: file_digest(net.backbone.get("checkpoint")) for role, net in networks.items()},
        "train": plain(config.train),
        "seed": config.seed,
        "paradigm": extra,
    }


def pretrained_key(network: NetworkConfig) -> dict[str, Any]:
    """A backbone after its pretrainer's task: the backbone, the pretrainer and their code (no seed, no data)."""
    components = [(BACKBONES, network.backbone["name"]), (PRETRAINERS, network.pretrain["name"])]
    return {
        "code": code_fingerprint(TRAINING_MODULES, components),
        "backbone": network.backbone,
        "checkpoint": file_digest(network.backbone.get("checkpoint")),
        "pretrain": network.pretrain,
    }


def frozen_outputs_key(model: dict[str, Any], align: str, device_type: str) -> dict[str, Any]:
    """A frozen network's aligned maps on every training batch (its model's key, the map, the device kind)."""
    return {"model": model, "align": align, "device": device_type}


def cams_key(
    model: dict[str, Any], cam: dict[str, Any], split: str, scale: float, flip: bool, layer: str | None
) -> dict[str, Any]:
    """A split's CAMs at one scale, flip and layer."""
    return {
        "model": model,
        "cam": cam,
        "code": code_fingerprint(CAM_MODULES, [(CAMS, cam["name"])]),
        "split": split,
        "scale": scale,
        "flip": flip,
        "layer": layer,
    }


def features_key(model: dict[str, Any], role: str, split: str) -> dict[str, Any]:
    """A trained network's feature maps on a split (the model's code computes them)."""
    return {"model": model, "role": role, "split": split}


def post_key(
    model: dict[str, Any], cam: dict[str, Any], step: str | None, name: str, params: dict[str, Any], split: str | None
) -> dict[str, Any]:
    """A value the post-processing step ``step`` computed, under the ``name`` and ``params`` it gave; ``split`` None
    for a value that does not depend on the split. The step's module is in the key: it decides what is computed,
    whatever it names its entry."""
    code = code_fingerprint(POSTPROCESS_MODULES, [(POSTPROCESSORS, step)] if step else [])
    key = {"model": model, "cam": cam, "code": code, "name": name, "params": params}
    if split is not None:
        key["split"] = split
    return key


def pseudo_masks_key(model: dict[str, Any], config: TrialConfig, default_step: str) -> dict[str, Any]:
    """The train split's gated pseudo-masks: the model, the CAM method, the chain (ended by ``default_step``), their
    code."""
    steps = [*(spec["name"] for spec in config.postprocess), default_step]
    components = [(CAMS, config.cam["name"]), *((POSTPROCESSORS, name) for name in steps)]
    return {
        "model": model,
        "cam": config.cam,
        "postprocess": config.postprocess,
        "code": code_fingerprint((*CAM_MODULES, *POSTPROCESS_MODULES, *SEGMENT_MODULES), components),
        "split": "train",
    }


def segmenter_key(config: TrialConfig, targets: dict[str, Any], data_fingerprint: str) -> dict[str, Any]:
    """Stage 3's segmenter: its spec, what its ``targets`` come from (a pseudo-mask key, or the true masks'
    fingerprint), the data and the seed."""
    spec = config.segment
    return {
        "code": code_fingerprint(SEGMENT_MODULES, [(SEGMENTERS, spec["name"])]),
        "segment": spec,
        "checkpoint": file_digest(spec.get("checkpoint")),
        "targets": targets,
        "data_fingerprint": data_fingerprint,
        "seed": config.seed,
    }


def trial_code(config: dict[str, Any], metrics: dict[str, float]) -> dict[str, str]:
    """The fingerprint of all the code behind a trial's numbers: the harness modules of every stage, the modules
    of the resolved ``config``'s components and of the ``metrics`` it computed."""
    components = []
    for slot, kind in COMPONENT_SLOTS.items():
        try:
            spec = get_dotted(config, slot)
        except KeyError:
            continue
        if isinstance(spec, dict):  # None: an optional stage left out
            components.append((ALL[kind], spec["name"]))
    components += [(POSTPROCESSORS, step["name"]) for step in config["postprocess"]]
    components += [(METRICS, name) for name in METRICS.names() if name in metrics]
    return code_fingerprint(TRIAL_MODULES, components)
