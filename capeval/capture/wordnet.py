"""WordNet 3.0 (Miller, 1995) for NLTK, offline: Debian's ``wordnet-base`` files arranged as an NLTK corpus.

NLTK's ``WordNetCorpusReader`` reads a directory ``corpora/wordnet/`` holding the WordNet database files
plus a ``lexnames`` file (lexicographer file numbers and names) that Debian's packages do not ship.
capeval builds that directory on demand under ``$CAPEVAL_NLTK_DATA`` (default
``~/.cache/capeval/nltk_data``): copies of the database files (from ``/usr/share/wordnet``, or
``$CAPEVAL_WORDNET_DIR`` / ``$WNSEARCHDIR``; copies, not links, because NLTK 3.10 refuses to open files
that resolve outside its data paths) and a ``lexnames`` file written from the 45 names of WordNet's
``lexnames(5WN)`` page. That directory is added to ``nltk.data.path``. Nothing is ever downloaded: when no
WordNet is found, :class:`WordNetMissing` says how to install it.

Run ``python -m capeval.capture.wordnet`` to prepare (and check) the directory ahead of time.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import warnings
from functools import lru_cache
from pathlib import Path
from typing import Any

from capeval.errors import CapevalError

#: The 45 lexicographer files of WordNet 3.0 in file-number order (``lexnames(5WN)``).
LEXNAMES: tuple[str, ...] = (
    "adj.all", "adj.pert", "adv.all", "noun.Tops", "noun.act", "noun.animal", "noun.artifact",
    "noun.attribute", "noun.body", "noun.cognition", "noun.communication", "noun.event", "noun.feeling",
    "noun.food", "noun.group", "noun.location", "noun.motive", "noun.object", "noun.person",
    "noun.phenomenon", "noun.plant", "noun.possession", "noun.process", "noun.quantity", "noun.relation",
    "noun.shape", "noun.state", "noun.substance", "noun.time", "verb.body", "verb.change", "verb.cognition",
    "verb.communication", "verb.competition", "verb.consumption", "verb.contact", "verb.creation",
    "verb.emotion", "verb.motion", "verb.perception", "verb.possession", "verb.social", "verb.stative",
    "verb.weather", "adj.ppl",
)
#: Syntactic category codes of the third ``lexnames`` column.
_CATEGORY = {"noun": 1, "verb": 2, "adj": 3, "adv": 4}

#: Database files NLTK's reader opens (all but ``lexnames``, which capeval writes).
DATABASE_FILES: tuple[str, ...] = (
    "cntlist.rev", "index.sense",
    "index.adj", "index.adv", "index.noun", "index.verb",
    "data.adj", "data.adv", "data.noun", "data.verb",
    "adj.exc", "adv.exc", "noun.exc", "verb.exc",
)
SYSTEM_DIRS: tuple[str, ...] = (
    "/usr/share/wordnet", "/usr/local/WordNet-3.0/dict", "/usr/share/wordnet/dict",
)

INSTALL_HINT = (
    "install WordNet: on Debian/Ubuntu `apt-get install wordnet-base wordnet-sense-index` "
    "(or point $CAPEVAL_WORDNET_DIR at a WordNet 3.0 dict/ directory, or put NLTK's own wordnet corpus "
    "into an NLTK data directory yourself); capeval never downloads it"
)


class WordNetMissing(CapevalError):
    """No WordNet database can be found; the message says how to install one."""


def lexnames_text() -> str:
    """The ``lexnames`` file: ``NN<TAB>name<TAB>category`` per line, as ``lexnames(5WN)`` describes it."""
    lines = []
    for number, name in enumerate(LEXNAMES):
        lines.append(f"{number:02d}\t{name}\t{_CATEGORY[name.split('.')[0]]}")
    return "\n".join(lines) + "\n"


def nltk_data_dir() -> Path:
    """The NLTK data directory capeval prepares: ``$CAPEVAL_NLTK_DATA`` or ``~/.cache/capeval/nltk_data``."""
    env = os.environ.get("CAPEVAL_NLTK_DATA")
    if env:
        return Path(env).expanduser()
    cache = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(cache) / "capeval" / "nltk_data"


def _has_database(path: Path) -> bool:
    return all((path / name).is_file() for name in DATABASE_FILES)


def find_database() -> Path | None:
    """The first directory holding the WordNet database: $CAPEVAL_WORDNET_DIR, $WNSEARCHDIR, system dirs."""
    candidates = [os.environ.get("CAPEVAL_WORDNET_DIR"), os.environ.get("WNSEARCHDIR"), *SYSTEM_DIRS]
    for c in candidates:
        if c and _has_database(Path(c)):
            return Path(c)
    return None


def corpus_dir(data_dir: Path | None = None) -> Path:
    """Where the prepared corpus lives: ``<nltk data>/corpora/wordnet``."""
    return (data_dir or nltk_data_dir()) / "corpora" / "wordnet"


def is_prepared(data_dir: Path | None = None) -> bool:
    """Whether the prepared corpus exists and every file in it resolves."""
    root = corpus_dir(data_dir)
    return _has_database(root) and (root / "lexnames").is_file()


def prepare_wordnet(data_dir: Path | None = None, source: Path | None = None) -> Path:
    """Build ``<data_dir>/corpora/wordnet`` from a WordNet database directory; return the corpus directory.

    Files are copied (about 37 MB); the ``lexnames`` file is written. The directory is assembled under a
    temporary name and renamed into place, so concurrent runs never see half a corpus.
    """
    target = corpus_dir(data_dir)
    if is_prepared(data_dir):
        return target
    source = source or find_database()
    if source is None:
        raise WordNetMissing(f"WordNet database not found ({', '.join(SYSTEM_DIRS)}): {INSTALL_HINT}")
    missing = [n for n in DATABASE_FILES if not (source / n).is_file()]
    if missing:
        raise WordNetMissing(f"{source} lacks WordNet files {', '.join(missing)}: {INSTALL_HINT}")
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".wordnet-", dir=target.parent))
    try:
        for name in DATABASE_FILES:
            shutil.copyfile((source / name).resolve(), staging / name)
        (staging / "lexnames").write_text(lexnames_text(), encoding="utf-8")
        if target.exists() or target.is_symlink():  # incomplete, or prepared concurrently
            if is_prepared(data_dir):
                return target
            _remove(target)
        try:
            os.replace(staging, target)
        except OSError:
            if not is_prepared(data_dir):
                raise
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)
    return target


def _remove(path: Path) -> None:
    if path.is_symlink() or path.is_file():
        path.unlink()
    else:
        shutil.rmtree(path)


def wordnet_root() -> tuple[Any, str]:
    """The corpus root NLTK should read and where it came from (``capeval`` or ``nltk_data``).

    Order: the prepared capeval directory (built now from the system database when missing); otherwise
    an NLTK ``corpora/wordnet`` the user installed in one of NLTK's data paths; otherwise
    :class:`WordNetMissing`.
    """
    import nltk

    if is_prepared() or find_database() is not None:
        root = prepare_wordnet()
        data_dir = str(nltk_data_dir())
        if data_dir not in nltk.data.path:
            nltk.data.path.append(data_dir)  # NLTK only opens files under its data paths
        return str(root), "capeval"

    try:
        return nltk.data.find("corpora/wordnet"), "nltk_data"
    except LookupError:
        pass
    raise WordNetMissing(f"WordNet is not installed: {INSTALL_HINT}")


@lru_cache(maxsize=1)
def wordnet_reader() -> Any:
    """NLTK's ``WordNetCorpusReader`` over the offline WordNet (built once per process).

    The reader is NLTK's, except that it skips NLTK's mapping of Open Multilingual Wordnet synset ids onto the
    loaded version (``map_wn``, which reads ``index.sense`` twice, ~10 s): capeval uses English WordNet only.
    """
    from nltk.corpus.reader.wordnet import WordNetCorpusReader

    class _EnglishWordNet(WordNetCorpusReader):
        def map_wn(self, version: str = "wordnet") -> None:
            return None

    root, _ = wordnet_root()
    with warnings.catch_warnings():  # "multilingual functions are not available": capeval needs English only
        warnings.simplefilter("ignore")
        return _EnglishWordNet(root, None)


def wordnet_version() -> str:
    """The WordNet version the reader reports (``3.0``), for signatures."""
    return str(wordnet_reader().get_version() or "unknown")


def lemmatize(word: str, pos: str) -> str:
    """As NLTK's ``WordNetLemmatizer.lemmatize``: the shortest WordNet base form of ``word``, or ``word``."""
    lemmas = wordnet_reader()._morphy(word, pos)
    return min(lemmas, key=len) if lemmas else word


def main() -> None:
    """Prepare the corpus and print where it is and what it reports."""
    root, origin = wordnet_root()
    reader = wordnet_reader()
    print(f"WordNet {reader.get_version()} ({origin}) at {root}")
    print(f"dog.n.01: {reader.synset('dog.n.01').definition()}")


if __name__ == "__main__":
    main()
