"""Single-network baseline."""

from ablate import PARADIGMS


@PARADIGMS.register("single")
class Single:
    """One network trained alone with L_cls (the teacher-alone / student-alone baselines).

    Args:
        network: which config section to train, ``teacher`` or ``student``.
    """

    uses_transfer = False

    def __init__(self, network: str = "student") -> None:
        if network not in ("teacher", "student"):
            raise ValueError(f"paradigm single: network must be 'teacher' or 'student', got {network!r}")
        self.roles = (network,)

    def fit(self, trainer):
        role = self.roles[0]
        return {role: trainer.classifier(role)}
