"""pycocoevalcap's COCO caption evaluation: Java PTB tokenizer, BLEU-1..4, METEOR 1.5, ROUGE-L, CIDEr-D.

The Java parts (Stanford PTBTokenizer 3.4.1 and METEOR 1.5) run from the jars the pycocoevalcap
package ships. Without Java (or without pycocoevalcap) the tokenizer falls back to medcap's Python
port (`medcap.metrics.tokenize.coco_tokenize`, labelled as such) and METEOR is reported as
unavailable rather than replaced by a different METEOR.
"""

from __future__ import annotations

import importlib.util
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from medcap.metrics.bertscore import MetricUnavailable
from medcap.metrics.rouge import lcs_length
from medcap.metrics.tokenize import COCO_PUNCTUATION, coco_tokenize

JAVA_TOKENIZER = "java PTBTokenizer (pycocoevalcap)"
PYTHON_TOKENIZER = "python port of PTBTokenizer (Java not available)"
_LINE_BREAKS = str.maketrans({"\n": " ", "\r": " ", "\x0b": " ", "\x0c": " ", "\x1c": " ", "\x1d": " ",
                              "\x1e": " ", "\x85": " ", "\u2028": " ", "\u2029": " "})


@dataclass(frozen=True)
class CocoTools:
    """Where the Java pieces are, or why they are missing."""

    java: str | None
    package_dir: Path | None
    reason: str = ""

    @property
    def available(self) -> bool:
        return self.java is not None and self.package_dir is not None

    @property
    def tokenizer_jar(self) -> Path:
        return self.package_dir / "tokenizer" / "stanford-corenlp-3.4.1.jar"


def find_tools() -> CocoTools:
    """Java on PATH and the pycocoevalcap package (for its jars)."""
    java = shutil.which("java")
    spec = importlib.util.find_spec("pycocoevalcap")  # a namespace package: no __file__
    locations = list(spec.submodule_search_locations or []) if spec else []
    package_dir = Path(locations[0]) if locations else None
    if java is None:
        return CocoTools(None, package_dir, "Java is not installed (apt-get install default-jre-headless)")
    if package_dir is None:
        return CocoTools(java, None, "pycocoevalcap is not installed (pip install pycocoevalcap==1.2)")
    return CocoTools(java, package_dir)


def java_tokenize(texts: Sequence[str], tools: CocoTools) -> list[str]:
    """pycocoevalcap PTBTokenizer.tokenize: one line per caption, lower-cased, punctuation dropped.

    pycocoevalcap replaces only "\\n"; other line breaks would shift every later caption, so they
    become spaces too (the tokenizer treats them as whitespace inside a line anyway).
    """
    unique = list(dict.fromkeys(texts))
    with tempfile.NamedTemporaryFile("w", suffix=".txt", encoding="utf-8", delete=False) as handle:
        handle.write("\n".join(text.translate(_LINE_BREAKS) for text in unique))
        path = handle.name
    try:
        done = subprocess.run(
            [tools.java, "-cp", str(tools.tokenizer_jar), "edu.stanford.nlp.process.PTBTokenizer",
             "-preserveLines", "-lowerCase", path],
            capture_output=True, check=False)
    finally:
        Path(path).unlink(missing_ok=True)
    if done.returncode != 0:
        raise MetricUnavailable(f"the Java PTB tokenizer failed: {done.stderr.decode('utf-8', 'replace')[-300:]}")
    lines = done.stdout.decode("utf-8").split("\n")
    if len(lines) < len(unique):
        raise MetricUnavailable(f"the Java PTB tokenizer returned {len(lines)} lines for {len(unique)} captions")
    tokenized = {text: " ".join(w for w in line.rstrip().split(" ") if w not in COCO_PUNCTUATION)
                 for text, line in zip(unique, lines)}
    return [tokenized[text] for text in texts]


def python_tokenize(texts: Sequence[str]) -> list[str]:
    return [" ".join(coco_tokenize(text)) for text in texts]


def rouge_l_coco(candidate: str, reference: str, beta: float = 1.2) -> float:
    """pycocoevalcap Rouge.calc_score with one reference: LCS F-measure with beta 1.2.

    Tokens come from `split(" ")`, so an empty caption is one empty token (two empty captions
    score 1, as in pycocoevalcap).
    """
    cand, ref = candidate.split(" "), reference.split(" ")
    common = lcs_length(ref, cand)
    precision, recall = common / len(cand), common / len(ref)
    if precision == 0 or recall == 0:
        return 0.0
    return ((1 + beta**2) * precision * recall) / (recall + beta**2 * precision)


def meteor_15(candidates: Sequence[str], references: Sequence[str], tools: CocoTools) -> tuple[float, np.ndarray]:
    """METEOR 1.5 through pycocoevalcap's Meteor (the jar's corpus score and per-caption scores)."""
    if not tools.available:
        raise MetricUnavailable(f"METEOR 1.5 needs Java and pycocoevalcap's jar: {tools.reason}")
    from pycocoevalcap.meteor.meteor import Meteor

    gts = {i: [ref] for i, ref in enumerate(references)}
    res = {i: [cand] for i, cand in enumerate(candidates)}
    scorer = Meteor()  # its __del__ stops the JVM when this call returns
    corpus, per_caption = scorer.compute_score(gts, res)
    return float(corpus), np.asarray(per_caption, dtype=np.float64)
