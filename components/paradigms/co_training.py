"""Co-training of both networks."""

from ablate import PARADIGMS, classification_loss


@PARADIGMS.register("co_training", label="co-training")
class CoTraining:
    """Both networks trained jointly with L_cls(cnn) + L_cls(vit) + lambda * L_tf, L_tf flowing into both."""

    roles = ("teacher", "student")
    uses_transfer = True

    def fit(self, trainer):
        def train():
            teacher, student = trainer.build("teacher"), trainer.build("student")
            transfer = trainer.transfer(student, teacher)

            def loss(out, labels):
                cls_t = classification_loss(out["teacher"], labels)
                cls_s = classification_loss(out["student"], labels)
                tf = transfer(out["student"].aligned(student.align), out["teacher"].aligned(teacher.align))
                parts = {"cls": cls_t + cls_s, "cls_teacher": cls_t, "cls_student": cls_s, "tf": tf}
                return cls_t + cls_s + trainer.transfer_weight * tf, parts

            trainer.fit({"teacher": teacher, "student": student}, loss, "co-training", extra=transfer)
            return {"teacher": teacher, "student": student}

        return trainer.cached_networks(self.roles, trainer.paradigm_inputs(self.uses_transfer), train)
