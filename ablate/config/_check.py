"""Checking a trial config before any work (trial path step 0): fields, components, and what they make together.

:func:`validate` resolves a partial config against the defaults, checks every field and component
(one line listing all problems), then builds the chosen networks on the meta device to catch what only
the combination can show: roles a paradigm does not train, channel counts a projection cannot map,
CAM layers a backbone does not have (also those a post-processing step asks CAMs of), a segmenter that cannot be
built. The config it returns has ``cam.network: auto`` replaced by the network the paradigm trains last.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import torch

from ablate._plugins import load_components
from ablate._registries import ALL, PARADIGMS, POSTPROCESSORS, SEGMENTERS
from ablate.cache._store import stable_hash
from ablate.config._resolve import (
    CAM_NETWORKS,
    COMPONENT_SLOTS,
    OPTIONAL_SLOTS,
    ROLES,
    ConfigError,
    get_dotted,
    resolve,
)
from ablate.config._schema import SegmentTraining, TrialConfig, schema_problems
from ablate.pipeline._data import CLASSES
from ablate.pipeline._models import build_network
from ablate.pipeline._postprocess import discarded_steps
from ablate.pipeline._transfer import TransferLoss


def default_mask_step() -> str:
    """The post-processor registered with ``default=True``: it ends a chain that produced no mask."""
    names = POSTPROCESSORS.tagged("default")
    if len(names) != 1:
        raise ConfigError(
            "postprocess: exactly one post-processor must be registered with default=True to make the mask of "
            f"a chain that makes none (found: {', '.join(names) or 'none'})"
        )
    return names[0]


def check(config: dict[str, Any]) -> list[str]:
    """Structural problems of a resolved config, each prefixed with its dotted field."""
    problems = schema_problems(config)  # keys, types and bounds of every field (ablate.config._schema.TrialConfig)
    for slot, kind in COMPONENT_SLOTS.items():
        try:
            spec = get_dotted(config, slot)
        except KeyError:
            continue
        if spec is None and slot in OPTIONAL_SLOTS:
            continue
        problems += _check_component(spec, slot, ALL[kind])
    cam = config.get("cam", {})
    if isinstance(cam, dict) and cam.get("network", "auto") not in CAM_NETWORKS:
        problems.append(f"cam.network: expected one of {', '.join(CAM_NETWORKS)}, got {cam.get('network')!r}")
    steps = config.get("postprocess")
    if not isinstance(steps, list):
        problems.append(f"postprocess: expected a list of steps, such as [crf] or [{{name: crf}}], got {steps!r}")
    else:
        for i, step in enumerate(steps):
            problems += _check_component(step, f"postprocess[{i}]", ALL["postprocessors"])
    segment = config.get("segment")
    if isinstance(segment, dict):  # its training keys (the segmenter's own parameters are checked above)
        keys = {field.name for field in dataclasses.fields(SegmentTraining)}
        problems += schema_problems({k: v for k, v in segment.items() if k in keys}, SegmentTraining, "segment.")
    metrics = config.get("metrics")
    if metrics is not None:
        if not isinstance(metrics, list):
            problems.append(f"metrics: expected a list of metric names, got {metrics!r}")
        else:
            problems += [f"metrics: {ALL['metrics'].unknown_message(m)}" for m in metrics if m not in ALL["metrics"]]
    if not isinstance(config.get("plugins"), list):
        problems.append("plugins: expected a list of module names")
    return problems


def _check_component(spec: Any, field: str, registry: Any) -> list[str]:
    if not isinstance(spec, dict) or not isinstance(spec.get("name"), str):
        return [f"{field}: expected a component name or a mapping with 'name', got {spec!r}"]
    if spec["name"] not in registry:
        return [f"{field}.name: {registry.unknown_message(spec['name'])}"]
    return [f"{field}: {p}" for p in registry.check_params(spec["name"], registry.spec_params(spec))]


def check_segment(segment: dict[str, Any] | None, spec: dict[str, Any], train_masks: bool) -> None:
    """Refuse a stage 3 that learns from ground-truth masks the data ``spec`` does not have (``train_masks``); a
    check that needs the loaded data, so it runs once the data is (a study checks it before any training)."""
    if segment is not None and segment["masks"] == "ground_truth" and not train_masks:
        raise ConfigError(
            f"segment.masks: ground_truth needs masks of the train split, and data '{spec['name']}' has none "
            "(use masks: pseudo)"
        )


def _combination_key(resolved: dict[str, Any], check_files: bool) -> str:
    """What :func:`_check_combination` reads: the component slots, the network sections, ``cam`` and the chain.
    Configurations that differ in other values only (a sweep of a learning rate, a loss weight, a seed) share it."""
    slots = {slot: get_dotted(resolved, slot) for slot in COMPONENT_SLOTS}
    sections = {key: resolved[key] for key in (*ROLES, "cam", "postprocess")}
    return stable_hash({"slots": slots, "sections": sections, "check_files": check_files})


def validate(
    config: dict[str, Any] | None = None,
    overrides: dict[str, Any] | None = None,
    check_files: bool = True,
    build: bool = True,
    combinations: dict[str, list[str]] | None = None,
) -> dict[str, Any]:
    """Resolve and check a trial config without training anything.

    Args:
        config: a (partial) trial config.
        overrides: dotted-path overrides.
        check_files: also require checkpoint files to exist (off to check a config meant for another machine).
        build: also build every network on the meta device (channel counts, CAM layers, transfer shapes);
            off, only names, types and ranges are checked, with no import of the networks' libraries.
        combinations: the problems of the combinations checked so far (by their key), shared by the calls that
            check one study's configurations, so that a sweep builds each distinct combination's networks once.

    Returns:
        The resolved config; with ``build``, ``cam.network: auto`` is the network the paradigm trains last.

    Raises:
        ConfigError: one line listing every problem, each naming its dotted field.
    """
    resolved = resolve(config, overrides)
    load_components(resolved.get("plugins") or [], origin="plugins")
    default_mask_step()
    problems = check(resolved)
    if not problems and build:
        key = _combination_key(resolved, check_files)
        memo = combinations if combinations is not None else {}
        if key not in memo:
            memo[key] = _check_combination(resolved, check_files)
        problems = memo[key]
        if not problems:
            resolved = {**resolved, "cam": {**resolved["cam"], "network": _cam_network(resolved)}}
    if problems:
        raise ConfigError("; ".join(problems))
    return resolved


def _cam_network(resolved: dict[str, Any]) -> str:
    """The config's ``cam.network``, ``auto`` being the network its paradigm trains last."""
    chosen = resolved["cam"].get("network", "auto")
    return PARADIGMS.build(resolved["paradigm"]).roles[-1] if chosen == "auto" else chosen


def _check_combination(resolved: dict[str, Any], check_files: bool) -> list[str]:
    """Problems that need built components: roles, channel counts, CAM layers (built on the meta device)."""
    config = TrialConfig.from_dict(resolved)
    try:
        paradigm = PARADIGMS.build(config.paradigm)
    except (ValueError, TypeError) as exc:
        return [f"paradigm: {exc}"]
    steps = []
    for i, step in enumerate(config.postprocess):
        try:
            steps.append(POSTPROCESSORS.build(step))
        except (ValueError, TypeError) as exc:
            return [f"postprocess[{i}] ({step['name']}): {exc}"]
    discarded = discarded_steps(steps)
    if discarded:  # the chain would score as it does without the step, under the step's name
        (i, j), names = discarded[0], [step["name"] for step in config.postprocess]
        fix = "drop one of them" if names[i] == names[j] else f"put {names[j]} before {names[i]}, or drop one of them"
        return [
            f"postprocess[{i}] ({names[i]}): its output never counts: postprocess[{j}] ({names[j]}) replaces it "
            f"before any step reads it; {fix}"
        ]
    cam_network = _cam_network(resolved)
    if cam_network != "both" and cam_network not in paradigm.roles:
        return [
            f"cam.network: '{cam_network}' is not trained by paradigm '{config.paradigm['name']}' "
            f"(it trains {', '.join(paradigm.roles)})"
        ]
    networks = {}
    with torch.device("meta"):
        for role in paradigm.roles:
            role_config = config.network(role)
            if not check_files:
                backbone = {k: v for k, v in role_config.backbone.items() if k != "checkpoint"}
                role_config = dataclasses.replace(role_config, backbone=backbone)
            try:
                networks[role] = build_network(role_config)
            except (ValueError, TypeError, RuntimeError, OSError, KeyError) as exc:
                return [f"{role}: {exc}"]
        size = resolved["data"].get("image_size")  # the datasets' common parameter, when the data spec sets it
        for role, network in networks.items() if isinstance(size, int) else ():
            try:  # shapes only, on the meta device: a ViT refuses a size its patch does not divide
                network.backbone(torch.empty(1, 3, size, size))
            except (AssertionError, RuntimeError, ValueError) as exc:
                detail = " ".join(str(exc).split())[:160]
                return [f"{role}: a {size} px image (data.image_size) does not fit its backbone: {detail}"]
        if paradigm.uses_transfer:
            try:
                student, teacher = networks["student"], networks["teacher"]
                TransferLoss(config.transfer, student.aligned_channels, teacher.aligned_channels)
            except (ValueError, TypeError) as exc:
                return [str(exc)]
    # the CAM layer, and the layers post-processing steps ask CAMs of (a step lists them in `cam_layers`)
    layers = [("cam.layer", config.cam.get("layer"))] + [
        (f"postprocess[{i}] ({config.postprocess[i]['name']}).layers", layer)
        for i, step in enumerate(steps)
        for layer in getattr(step, "cam_layers", ())
    ]
    for role in networks if cam_network == "both" else [cam_network]:
        for field, layer in layers:
            try:
                networks[role].backbone.cam_layer(layer)
            except ValueError as exc:
                return [f"{field}: {exc} (the {role}'s backbone)"]
    if config.segment is not None:
        spec = config.segment if check_files else {k: v for k, v in config.segment.items() if k != "checkpoint"}
        try:
            with torch.device("meta"):
                SEGMENTERS.build(spec, num_classes=len(CLASSES))
        except (ValueError, TypeError, RuntimeError, OSError, KeyError) as exc:
            return [f"segment ({spec['name']}): {exc}"]
    return []
