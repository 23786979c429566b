"""capeval's ``rouge_l`` as a Hugging Face evaluate module (written by ``capeval export-evaluate``)."""

import evaluate

from capeval.hf_evaluate import compute, module_info


class RougeL(evaluate.Metric):
    """ROUGE-L (Lin, 2004) F-measure with beta 1.2, best over references, as pycocoevalcap computes it."""

    def _info(self):
        return module_info("rouge_l")

    def _compute(self, predictions, references, **options):
        return compute("rouge_l", predictions, references, **options)
