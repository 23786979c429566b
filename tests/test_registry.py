"""The registry: decorator, lazy built-ins, entry points, signatures, CIDEr-D's per-captioner rule."""

from __future__ import annotations

import numpy as np
import pytest

import capeval
from capeval import registry
from capeval.errors import UnknownMetric
from capeval.metrics.base import Batch, Metric, MetricStatistics


def test_decorator_registers_and_scores():
    @capeval.register_metric("test_length_ratio")
    class LengthRatio(Metric):
        outputs = ("test_length_ratio",)

        def statistics(self, batch: Batch, context, seed: int = 0) -> MetricStatistics:
            vals = np.array([len(c.split()) / max(len(r[0].split()), 1)
                             for c, r in zip(batch.candidates, batch.references, strict=True)])
            return MetricStatistics.of_values(batch.sample_ids, {"test_length_ratio": vals})

    r = capeval.evaluate({"1": ["a b c d"], "2": ["a b"]}, {"s": {"1": "a b", "2": "a b"}},
                         metrics=["test_length_ratio"])
    assert r.summary_dict()["captioners"]["s"]["test_length_ratio"]["mean"] == pytest.approx(0.75)
    assert r.signatures["test_length_ratio"] == f"test_length_ratio|nrefs:1|v:1|capeval:{capeval.__version__}"


def test_entry_point_group(tmp_path, monkeypatch):
    pkg = tmp_path / "extmetric.py"
    pkg.write_text(
        "from capeval.metrics.base import Metric, MetricOutput\n"
        "import numpy as np\n"
        "class Const(Metric):  # written for capeval 0.1.0's score() protocol: still runs\n"
        "    outputs = ('ext_const',)\n"
        "    def score(self, batch, context, seed=0):\n"
        "        v = np.ones(len(batch))\n"
        "        return MetricOutput({'ext_const': v}, {'ext_const': 1.0})\n"
    )
    dist = tmp_path / "extmetric-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: extmetric\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text("[capeval.metrics]\next_const = extmetric:Const\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr(registry, "_entry_points_loaded", False)
    monkeypatch.setattr(registry, "_registry", dict(registry._registry))
    assert "ext_const" in registry.metric_names()
    r = capeval.evaluate({"1": ["x"]}, {"s": {"1": "y"}}, metrics=["ext_const"])
    assert r.summary_dict()["captioners"]["s"]["ext_const"]["mean"] == 1.0


def test_unknown_metric():
    with pytest.raises(UnknownMetric, match="Did you mean bleu"):
        registry.get_metric_class("bleuu")


@pytest.mark.java
def test_signatures():
    r = capeval.evaluate({"1": ["a dog runs", "a dog"], "2": ["a cat"]}, {"s": {"1": "a dog", "2": "a cat"}},
                         metrics=["bleu", "meteor", "rouge_l", "cider"])
    v = capeval.__version__
    assert r.signatures == {
        "bleu_1": f"bleu_1|nrefs:var|tok:ptb|impl:pycocoevalcap-1.2|v:1|capeval:{v}",
        "bleu_2": f"bleu_2|nrefs:var|tok:ptb|impl:pycocoevalcap-1.2|v:1|capeval:{v}",
        "bleu_3": f"bleu_3|nrefs:var|tok:ptb|impl:pycocoevalcap-1.2|v:1|capeval:{v}",
        "bleu_4": f"bleu_4|nrefs:var|tok:ptb|impl:pycocoevalcap-1.2|v:1|capeval:{v}",
        "meteor": f"meteor|nrefs:var|lang:en|norm:yes|tok:ptb|impl:pycocoevalcap-1.2|v:1|capeval:{v}",
        "rouge_l": f"rouge_l|nrefs:var|beta:1.2|tok:ptb|impl:pycocoevalcap-1.2|v:1|capeval:{v}",
        "cider": f"cider|nrefs:var|n:4|sigma:6|df:refs|tok:ptb|impl:pycocoevalcap-1.2|v:1|capeval:{v}",
    }


@pytest.mark.java
def test_cider_does_not_depend_on_other_captioners(thumb):
    refs, systems = thumb
    ids = list(refs)[:60]
    refs = {i: refs[i] for i in ids}
    a = {i: systems["Up-Down"][i] for i in ids}
    b = {i: systems["Human"][i] for i in ids[:30]}  # covers only half the images
    alone = capeval.evaluate(refs, {"a": a}, metrics=["cider"]).summary_dict()["captioners"]["a"]["cider"]
    both = capeval.evaluate(refs, {"a": a, "b": b}, metrics=["cider"]).summary_dict()["captioners"]
    assert both["a"]["cider"] == alone
    assert both["b"]["cider"]["n"] == 30
