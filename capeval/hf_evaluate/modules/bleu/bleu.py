"""capeval's ``bleu`` as a Hugging Face evaluate module (written by ``capeval export-evaluate``)."""

import evaluate

from capeval.hf_evaluate import compute, module_info


class Bleu(evaluate.Metric):
    """BLEU-1..4 (Papineni et al., 2002) as pycocoevalcap computes it: 'closest' reference length."""

    def _info(self):
        return module_info("bleu")

    def _compute(self, predictions, references, **options):
        return compute("bleu", predictions, references, **options)
