"""Contract checks for components, one per registry kind, in the style of scikit-learn's ``check_estimator``.

A plugin author checks a variant with one call, which raises ``AssertionError`` naming the broken rule::

    from ablate.testing import check_component

    check_component("levels", "centroid")
    check_component("backbones", "timm", model="test_vit")

The suite runs every check over every registered entry (``tests/ablate/test_testing.py``), as timm's tests run
over every model.
"""

from ablate.testing._checks import CHECKS, SMALL_TRIAL, check_component

__all__ = ["CHECKS", "SMALL_TRIAL", "check_component"]
