"""capeval's ``meteor`` as a Hugging Face evaluate module (written by ``capeval export-evaluate``)."""

import evaluate

from capeval.hf_evaluate import compute, module_info


class Meteor(evaluate.Metric):
    """METEOR 1.5 (Denkowski & Lavie, 2014) through pycocoevalcap's jar, one supervised JVM per run."""

    def _info(self):
        return module_info("meteor")

    def _compute(self, predictions, references, **options):
        return compute("meteor", predictions, references, **options)
