"""capeval's ``cider`` as a Hugging Face evaluate module (written by ``capeval export-evaluate``)."""

import evaluate

from capeval.hf_evaluate import compute, module_info


class Cider(evaluate.Metric):
    """CIDEr-D (Vedantam et al., 2015): n=4, sigma=6, document frequencies from this captioner's references."""

    def _info(self):
        return module_info("cider")

    def _compute(self, predictions, references, **options):
        return compute("cider", predictions, references, **options)
