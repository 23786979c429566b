"""capeval's ``mllm_judge`` as a Hugging Face evaluate module (written by ``capeval export-evaluate``)."""

import evaluate

from capeval.hf_evaluate import compute, module_info


class MllmJudge(evaluate.Metric):
    """A vision-language judge grades each caption 1-5 (registered as ``mllm_judge``)."""

    def _info(self):
        return module_info("mllm_judge")

    def _compute(self, predictions, references, **options):
        return compute("mllm_judge", predictions, references, **options)
