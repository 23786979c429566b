"""capeval's ``capture`` as a Hugging Face evaluate module (written by ``capeval export-evaluate``)."""

import evaluate

from capeval.hf_evaluate import compute, module_info


class Capture(evaluate.Metric):
    """CAPTURE: scene-graph precision/recall/F1 of objects, attributes and relations (see module docstring)."""

    def _info(self):
        return module_info("capture")

    def _compute(self, predictions, references, **options):
        return compute("capture", predictions, references, **options)
