"""The report's gallery: test images of the baseline, the best and the worst configuration, with their CAMs and
masks, from one training seed, as one mosaic."""

from __future__ import annotations

import numpy as np
import pandas as pd
from matplotlib import colormaps
from matplotlib.colors import to_rgb
from scipy import ndimage

from ablate._report._model import ReportData
from ablate._report._pdf import Plot, page, wrap
from ablate.pipeline._metrics import per_image_iou

MAX_GALLERY_ROWS = 8
PANEL, GAP = 96, 4  # gallery panel side and gap, pixels
CLASS_OUTLINE, OBJECT_OUTLINE, PRED = "lime", "cyan", (1.0, 0.15, 0.1)


def _sources(data: ReportData, summary: pd.DataFrame) -> list[tuple[str, pd.Series, dict[str, np.ndarray]]]:
    """(role, summary row, stored gallery) for the baseline, the best and the worst configuration.

    All come from one seed they all completed where there is one, so they show the same training seed.
    """
    ranked = summary[summary["rank"].notna()]
    picks: dict[str, tuple[str, pd.Series]] = {}
    for role, rows in (("baseline", ranked[ranked["baseline"]]), ("best", ranked.head(1)), ("worst", ranked.tail(1))):
        if not rows.empty:
            config = rows.iloc[0]["config_id"]
            picks[config] = (f"{picks[config][0]} = {role}" if config in picks else role, rows.iloc[0])
    done = data.completed
    stored = []
    for config, (role, row) in picks.items():
        trials = done[done["config_id"].eq(config)]
        files = {s: data.folder / gallery for s, gallery in trials[["seed", "gallery"]].values}
        paths = {s: p for s, p in files.items() if p.is_file()}
        if paths:  # artifacts of a trial can be gone (deleted, other machine); show the others
            stored.append((role, row, paths))
    common = set.intersection(*(set(paths) for *_, paths in stored)) if stored else set()
    return [(role, row, dict(np.load(paths[min(common or paths)]))) for role, row, paths in stored]


def _case(mask: np.ndarray, other: np.ndarray | None, names: dict[str, str]) -> str:
    """Which of the class and the co-occurring object a test image shows, e.g. ``smoke + chimney``."""
    shown = [names["class"]] if mask.any() else []
    shown += [names["object"]] if other is not None and other.any() else []
    return " + ".join(shown) or "clean"


class _Mosaic:
    """The gallery as one RGB image of equally sized panels (one image draws far faster than 64 axes)."""

    def __init__(self, rows: int, columns: int, shape: tuple[int, ...]) -> None:
        scale = PANEL / max(shape[:2])
        self.size = (round(shape[0] * scale), round(shape[1] * scale))
        self.index = tuple(np.arange(n) * m // n for n, m in zip(self.size, shape[:2], strict=True))
        height, width = self.size
        self.pixels = np.ones((rows * (height + GAP) - GAP, columns * (width + GAP) - GAP, 3))

    def fit(self, array: np.ndarray) -> np.ndarray:
        """``array`` resampled (nearest) to the panel size."""
        return array[self.index[0]][:, self.index[1]]

    def origin(self, row: int, column: int) -> tuple[int, int]:
        return row * (self.size[0] + GAP), column * (self.size[1] + GAP)

    def put(self, row: int, column: int, rgb: np.ndarray) -> None:
        y, x = self.origin(row, column)
        self.pixels[y : y + self.size[0], x : x + self.size[1]] = rgb

    def outlines(self, rgb: np.ndarray, mask: np.ndarray, other: np.ndarray | None) -> np.ndarray:
        """``rgb`` with the border pixels of the class mask (solid) and the co-occurring object's (dashed) painted."""
        rgb = rgb.copy()
        for outlined, colour, dashed in ((mask, CLASS_OUTLINE, False), (other, OBJECT_OUTLINE, True)):
            if outlined is None:
                continue
            inside = self.fit(outlined > 0)
            edge = inside & ~ndimage.binary_erosion(inside, border_value=1)
            if dashed:
                yy, xx = np.indices(edge.shape)
                edge &= (yy + xx) // 4 % 2 == 0
            rgb[edge] = to_rgb(colour)
        return rgb


def gallery_figure(data: ReportData, summary: pd.DataFrame) -> Plot | None:
    sources = _sources(data, summary)
    if not sources:
        if data.completed.empty:
            return None
        # say so rather than drop the page: a report written away from the trials' study folder has no images
        caption = (
            f"Not shown: none of the completed trials' gallery files (artifacts/trial-<number>.npz) is in "
            f"{data.folder}. The process that runs a trial writes them into its own study folder, so a report "
            "written on another machine (or after they were deleted) has none; run `ablate report` where the "
            "trials ran, or copy their artifacts/ folder here."
        )
        fig = page("Qualitative gallery", caption)
        fig.subplots().axis("off")
        return Plot("gallery", fig)
    first = sources[0][2]
    rows = min(MAX_GALLERY_ROWS, len(first["indices"]))
    cooccur = first.get("cooccur")
    names = data.names()
    segmented = all("seg_pred" in arrays for *_, arrays in sources)  # stage 3: the segmenter's masks too
    per = 3 if segmented else 2  # panels per configuration
    mosaic = _Mosaic(rows, 2 + per * len(sources), first["images"].shape[1:])
    jet = colormaps["jet"]
    scores = []
    for r in range(rows):
        image = mosaic.fit(first["images"][r] / 255.0)
        mask, outline = first["masks"][r], cooccur[r] if cooccur is not None else None
        mosaic.put(r, 0, image)
        mosaic.put(r, 1, mosaic.outlines(image, mask, outline))
        for p, (*_, arrays) in enumerate(sources):
            cam = np.clip(mosaic.fit(arrays["cams"][r].astype(np.float32)), 0, 1)
            mosaic.put(r, 2 + per * p, 0.5 * image + 0.5 * jet(cam)[..., :3])
            for offset, key in enumerate(["pred", "seg_pred"][: per - 1], start=1):
                pred = arrays[key][r]
                shaded = np.where(mosaic.fit(pred)[..., None], 0.45 * image + 0.55 * np.array(PRED), image)
                mosaic.put(r, 2 + per * p + offset, mosaic.outlines(shaded, mask, outline))
                if mask.any():
                    iou = per_image_iou(pred[None], mask[None])[0]
                    scores.append((*mosaic.origin(r, 2 + per * p + offset), f"{iou:.2f}"))
    caption = (
        f"Fixed test images (the first of each case). Ground truth: {names['class']} outlined green, "
        f"{names['object']} dashed cyan. Per configuration: its CAM (jet, 0 to 1) over the image, and its "
        f"pseudo-mask (red) with the same outlines"
        + (", then the stage-3 segmenter's mask (red)" if segmented else "")
        + f"; number: the image's {names['class']} IoU. One seed that all shown configurations completed where "
        "there is one."
    )
    fig = page("Qualitative gallery", caption)
    ax, key = fig.subplots(1, 2, width_ratios=[3, 1])
    ax.imshow(mosaic.pixels, interpolation="nearest")
    height, width = mosaic.size
    for y, x, text in scores:
        ax.text(x + 2, y + height - 3, text, fontsize=7, color="white", bbox={"facecolor": "black", "pad": 1})
    titles, colours = ["image", "ground\ntruth"], ["black", "black"]
    for role, row, _ in sources:
        titles += [f"{wrap(role, 9)}\n{kind}" for kind in ["CAM", "mask", "segmenter"][:per]]
        colours += [data.colour("", row["configuration"])] * per
    ax.xaxis.tick_top()
    ax.set_xticks([mosaic.origin(0, c)[1] + width / 2 for c in range(len(titles))], titles, fontsize=7)
    for label, colour in zip(ax.get_xticklabels(), colours, strict=True):
        label.set_color(colour)
    row_names = [
        f"{_case(first['masks'][r], cooccur[r] if cooccur is not None else None, names)}\n{first['names'][i]}"
        for r, i in enumerate(first["indices"][:rows])
    ]
    ax.set_yticks([mosaic.origin(r, 0)[0] + height / 2 for r in range(rows)], row_names, fontsize=7)
    key.axis("off")
    y = 1.0
    for role, row, _ in sources:
        text = f"{role} (rank {row['rank']}):\n{wrap(row['configuration'], 40, lines=8)}"
        key.text(0, y, text, va="top", fontsize=8, color=data.colour("", row["configuration"]))
        y -= 0.04 * (text.count("\n") + 2)
    ax.tick_params(length=0)
    for spine in ax.spines.values():
        spine.set_visible(False)
    return Plot("gallery", fig)
