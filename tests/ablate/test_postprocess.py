"""The post-processing contract: which steps of a chain a later step makes void (``reads`` / ``writes``)."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

import ablate
from ablate import ConfigError
from ablate.pipeline._postprocess import discarded_steps


def _step(reads: tuple[str, ...], writes: tuple[str, ...]) -> SimpleNamespace:
    return SimpleNamespace(reads=reads, writes=writes)


MASK = _step(("cams",), ("mask",))  # a threshold
REFINE = _step(("cams",), ("cams", "mask"))  # CRF, an affinity walk
RECOMPUTE = _step((), ("cams", "mask"))  # multi-scale, CAM fusion
SEEDED = _step(("cams", "mask"), ("mask",))  # SAM: prompted by an earlier mask


@pytest.mark.parametrize(
    ("chain", "discarded"),
    [
        ([REFINE, RECOMPUTE], [(0, 1)]),  # [crf, cam_fusion]: fusion computes its CAMs anew
        ([MASK, REFINE], [(0, 1)]),  # [threshold, crf]: CRF makes its mask from the CAMs
        ([MASK, RECOMPUTE, MASK], [(0, 1)]),
        ([RECOMPUTE, REFINE, MASK], []),
        ([REFINE, REFINE], []),  # [crf, affinitynet]: the walk reads CRF's CAMs (its mask is replaced)
        ([MASK, SEEDED], []),  # [threshold, sam]: SAM reads the mask
        ([MASK, MASK], [(0, 1)]),
        ([MASK, SimpleNamespace(), REFINE], []),  # a step that declares nothing may read anything
        ([], []),
    ],
)
def test_a_step_whose_every_output_is_replaced_unread_is_discarded(chain, discarded) -> None:
    assert discarded_steps(chain) == discarded


@pytest.mark.parametrize("name", ablate.POSTPROCESSORS.names())
def test_every_built_in_step_declares_what_it_reads_and_writes(name: str) -> None:
    factory = ablate.POSTPROCESSORS.get(name).factory
    assert set(factory.reads) <= {"cams", "mask"} and set(factory.writes) <= {"cams", "mask"}
    assert factory.writes, "a step writes something"


def test_a_chain_that_voids_a_step_is_refused_naming_both() -> None:
    # [crf, cam_fusion] scored as cam_fusion alone, in a row named CRF + CAM fusion beside the paper's number
    chain = ["crf", {"name": "cam_fusion", "layers": ["blocks.-2", "blocks.-1"]}]
    with pytest.raises(ConfigError, match=r"postprocess\[0\] \(crf\): its output never counts: postprocess\[1\]"):
        ablate.validate({"postprocess": chain})
    ablate.validate({"postprocess": chain[::-1]})
    with pytest.raises(ConfigError, match=r"replaces it before any step reads it; drop one of them$"):
        ablate.validate({"postprocess": ["multiscale", "multiscale"]})  # said "put multiscale before multiscale"
