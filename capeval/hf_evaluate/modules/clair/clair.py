"""capeval's ``clair`` as a Hugging Face evaluate module (written by ``capeval export-evaluate``)."""

import evaluate

from capeval.hf_evaluate import compute, module_info


class Clair(evaluate.Metric):
    """CLAIR: text-only LLM judgment of candidate vs references, 0-1 (registered as ``clair``)."""

    def _info(self):
        return module_info("clair")

    def _compute(self, predictions, references, **options):
        return compute("clair", predictions, references, **options)
