"""capeval's ``spice`` as a Hugging Face evaluate module (written by ``capeval export-evaluate``)."""

import evaluate

from capeval.hf_evaluate import compute, module_info


class Spice(evaluate.Metric):
    """SPICE (Anderson et al., 2016) through pycocoevalcap's jar; needs Stanford CoreNLP 3.6.0 models."""

    def _info(self):
        return module_info("spice")

    def _compute(self, predictions, references, **options):
        return compute("spice", predictions, references, **options)
