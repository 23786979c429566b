"""Validate candidate files against the references and align them by sample id.

Policy (documented in README, "Input rules"):

* every candidate id must have references, else an error naming the file and the id;
* an id typed as an integer in one file and as a string in the other (``1`` vs ``"1"``) is an error; ids from
  formats without types (JSON object keys, CSV cells) match by their text;
* every caption is whitespace-normalised (:func:`capeval.text.normalize_whitespace`);
* a blank reference is dropped and counted; an id left with no reference is an error;
* a blank candidate is kept and scored as the empty caption (0 on every metric, see
  :mod:`capeval.metrics.coco`); it is counted per captioner in ``summary.json`` and warned about.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from capeval.errors import InputError
from capeval.io.readers import CaptionFile
from capeval.text import normalize_whitespace

log = logging.getLogger("capeval")


@dataclass
class Dataset:
    """Aligned inputs: what the metrics score.

    ``candidates[captioner][sample_id]`` is one normalised caption; ``references[sample_id]`` lists the
    normalised references of every id any captioner covers, in reference-file order.
    """

    references: dict[str, list[str]]
    candidates: dict[str, dict[str, str]]
    images: dict[str, str] = field(default_factory=dict)
    empty_candidates: dict[str, list[str]] = field(default_factory=dict)
    dropped_references: int = 0  # blank references dropped from the whole references file
    dropped_by_id: dict[str, int] = field(default_factory=dict)  # the same, per sample id (ids with any)

    @property
    def captioners(self) -> list[str]:
        """Captioner names in the order given."""
        return list(self.candidates)

    @property
    def sample_ids(self) -> list[str]:
        """All sample ids any captioner covers, in reference order."""
        return list(self.references)

    def ids_for(self, captioner: str) -> list[str]:
        """The ids one captioner is scored on, in reference order."""
        cands = self.candidates[captioner]
        return [i for i in self.references if i in cands]


def _check_kinds(refs: CaptionFile, cands: CaptionFile) -> None:
    if "untyped" in (refs.id_kind, cands.id_kind) or refs.id_kind == cands.id_kind:
        return
    example = next(iter(cands.captions))
    shown = int(example) if cands.id_kind == "int" else example
    raise InputError(
        f"id type mismatch: the candidates' ids are {'integers' if cands.id_kind == 'int' else 'strings'} "
        f"but the references' ids ({refs.path}) are {'integers' if refs.id_kind == 'int' else 'strings'}",
        path=cands.path, sample_id=shown,
    )


def align(references: CaptionFile, candidates: dict[str, CaptionFile]) -> Dataset:
    """Check every candidate file against the references and build the aligned :class:`Dataset`."""
    if not candidates:
        raise InputError("no candidate files given")
    refs_norm: dict[str, list[str]] = {}
    dropped = 0
    dropped_by_id: dict[str, int] = {}
    for sid, texts in references.captions.items():
        kept = [t for t in (normalize_whitespace(x) for x in texts) if t]
        if len(kept) < len(texts):
            dropped_by_id[sid] = len(texts) - len(kept)
            dropped += len(texts) - len(kept)
        refs_norm[sid] = kept
    if dropped:
        log.warning("%s: dropped %d blank reference(s)", references.path, dropped)

    used: set[str] = set()
    cands_norm: dict[str, dict[str, str]] = {}
    empty: dict[str, list[str]] = {}
    for name, cfile in candidates.items():
        _check_kinds(references, cfile)
        out: dict[str, str] = {}
        for sid, texts in cfile.captions.items():
            if sid not in refs_norm:
                raise InputError(f"candidate of captioner {name!r} has no references in {references.path}",
                                 path=cfile.path, sample_id=sid)
            if not refs_norm[sid]:
                raise InputError("every reference of this id is blank", path=references.path, sample_id=sid)
            text = normalize_whitespace(texts[0])
            if not text:
                empty.setdefault(name, []).append(sid)
            out[sid] = text
            used.add(sid)
        cands_norm[name] = out
        if name in empty:
            log.warning("%s: captioner %r has %d empty caption(s); scored as the empty string (0, or ~0 for BLEU)",
                        cfile.path, name, len(empty[name]))
    covered = {name: set(c) for name, c in cands_norm.items()}
    first = next(iter(covered.values()))
    if any(c != first for c in covered.values()):
        log.warning("captioners cover different ids: %s; paired comparisons use the ids they share",
                    {n: len(c) for n, c in covered.items()})
    images = dict(references.images)
    for cfile in candidates.values():
        for sid, img in cfile.images.items():
            images.setdefault(sid, img)
    ordered = {sid: refs_norm[sid] for sid in references.captions if sid in used}
    return Dataset(
        references=ordered,
        candidates=cands_norm,
        images={k: v for k, v in images.items() if k in used},
        empty_candidates=empty,
        dropped_references=dropped,
        dropped_by_id=dropped_by_id,
    )
