"""Single-network baseline."""

from typing import Literal

from ablate import PARADIGMS


@PARADIGMS.register("single")
class Single:
    """One network trained alone with L_cls (the teacher-alone / student-alone baselines).

    Args:
        network: which config section to train, ``teacher`` or ``student``.
    """

    uses_transfer = False

    def __init__(self, network: Literal["teacher", "student"] = "student") -> None:
        self.roles = (network,)

    def fit(self, trainer):
        role = self.roles[0]
        return {role: trainer.classifier(role)}
