"""Teacher-student knowledge transfer (the paper's best paradigm)."""

from ablate import PARADIGMS, classification_loss


@PARADIGMS.register("teacher_student", label="teacher-student")
class TeacherStudent:
    """Teacher trained first with L_cls, then frozen; student trained with L_cls + lambda * L_tf."""

    roles = ("teacher", "student")
    uses_transfer = True

    def fit(self, trainer):
        teacher_maps = trainer.frozen_classifier("teacher")  # computed once per teacher and seed, then shared
        teacher = teacher_maps.network

        def train():
            student = trainer.build("student")
            transfer = trainer.transfer(student, teacher)

            def loss(out, labels):
                cls = classification_loss(out["student"], labels)
                tf = transfer(out["student"].aligned(student.align), out["teacher"])
                return cls + trainer.transfer_weight * tf, {"cls": cls, "tf": tf}

            trainer.fit({"student": student}, loss, "student", extra=transfer, feeds={"teacher": teacher_maps})
            return {"teacher": teacher, "student": student}

        return trainer.cached_networks(self.roles, trainer.paradigm_inputs(self.uses_transfer), train)
