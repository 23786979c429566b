"""capeval's ``bertscore`` as a Hugging Face evaluate module (written by ``capeval export-evaluate``)."""

import evaluate

from capeval.hf_evaluate import compute, module_info


class Bertscore(evaluate.Metric):
    """BERTScore F1 (headline), precision and recall; best match over several references."""

    def _info(self):
        return module_info("bertscore")

    def _compute(self, predictions, references, **options):
        return compute("bertscore", predictions, references, **options)
