"""Tokenisers: a pure-Python stand-in for pycocoevalcap's Java PTB tokenizer, and rouge-score's.

pycocoevalcap tokenises with Stanford CoreNLP 3.4.1's PTBTokenizer (`-preserveLines -lowerCase`,
Java) and then drops the punctuation tokens in its PUNCTUATIONS list. Calling Java per request
is slow and needs a JRE, so `coco_tokenize` re-implements the rules that matter for captions:
lower-casing, splitting punctuation off words while keeping numbers (`1.5`, `1,000`), hyphenated
and slashed words (`t2-weighted`, `pet/ct`), inner apostrophes (`o'clock`) and common
abbreviations (`fig.`, `e.g.`) whole, splitting clitics (`'s`, `n't`), and PTB's bracket names
(`(` -> `-lrb-`: pycocoevalcap lists the upper-case names only, so after `-lowerCase` they stay).
On the 16,359 ROCO captions it agrees with the Java tokenizer on the vast majority of captions
(see benchmarks/README.md); BLEU and CIDEr-D are exact given the same tokens.
"""

from __future__ import annotations

import re
import unicodedata

#: pycocoevalcap/tokenizer/ptbtokenizer.py PUNCTUATIONS, verbatim.
COCO_PUNCTUATION = frozenset(
    ["''", "'", "``", "`", "-LRB-", "-RRB-", "-LCB-", "-RCB-",
     ".", "?", "!", ",", ":", "-", "--", "...", ";"]
)
_BRACKETS = {"(": "-lrb-", ")": "-rrb-", "[": "-lsb-", "]": "-rsb-", "{": "-lcb-", "}": "-rcb-"}
#: Abbreviations PTBTokenizer keeps with their period (case-insensitive; the ones seen in captions).
_ABBREVIATIONS = (
    "fig", "figs", "al", "dr", "drs", "mr", "mrs", "ms", "no", "nos", "vs", "cf", "inc", "etc",
    "ct", "la", "pa", "va", "md", "mo", "ga", "jan", "feb", "mar", "apr", "jun", "jul", "aug",
    "sep", "sept", "oct", "nov", "dec", "st", "co", "corp", "ltd", "jr", "sr", "prof", "gen",
    "mt", "ave", "dept", "univ", "vol", "col", "lt", "capt", "rev",
)
#: Unicode punctuation PTBTokenizer rewrites to its ASCII forms before splitting.
_UNICODE_PUNCTUATION = str.maketrans({
    "\u2013": " -- ", "\u2014": " -- ", "\u2015": " -- ",
    "\u201c": ' `` ', "\u201d": " '' ", "\u201e": ' `` ',
    "\u2018": " ` ", "\u2026": " ... ",
})
_WORD = r"[^\W_]"  # a letter or digit, any script
_LETTER = r"[^\W\d_]"
_ABBREVIATION = "|".join(sorted(_ABBREVIATIONS, key=len, reverse=True))
_TOKEN = re.compile(
    rf"""
    (?P<abbrev>(?:{_LETTER}\.){{2,}}(?!{_WORD})           # i.v. e.g. u.s.a.
        |(?i:{_ABBREVIATION})\.(?!{_WORD})               # fig. dr. no.
        |[A-Z]\.(?=\s|$))                                # single capital + period: "A. axial"
    |(?P<word>
        {_LETTER}+(?:\.{_LETTER}+)+(?!{_WORD}|[-/'\u2019])   # run-on sentences: woman.transvaginal
        |{_WORD}+(?:[.,:]\d+)*                            # word or number with decimals, 2:00
        (?:(?:[-/+&\u2010\u2011]|['\u2019](?={_LETTER}{{2,}}|{_LETTER}\b)(?<!n't|n\u2019t))
           {_WORD}+(?:[.,:]\d+)*)*                       # joined parts: t2-weighted pet/ct o'clock
    )
    |(?P<dots>\.{{2,}})
    |(?P<dashes>-{{2,}})
    |(?P<quote>``|''|")
    |(?P<other>\S)
    """,
    re.VERBOSE,
)
_CLITIC = re.compile(r"(?i)^(.+?)(n['\u2019]t|['\u2019](?:s|re|ve|ll|d|m))$")
_SPLIT_WORDS = {"cannot": ("can", "not"), "gonna": ("gon", "na"), "gotta": ("got", "ta")}


def _drop_untokenizable(text: str) -> str:
    """PTBTokenizer deletes format/control characters (e.g. U+2061) rather than emitting them."""
    if text.isascii():
        return text
    return "".join(ch for ch in text if unicodedata.category(ch) not in ("Cf", "Cc", "Co", "Cn"))


def ptb_tokens(text: str) -> list[str]:
    """PTB-style tokens of `text`, lower-cased, punctuation kept."""
    text = _drop_untokenizable(text.replace("\n", " ")).translate(_UNICODE_PUNCTUATION)
    tokens: list[str] = []
    open_quote = True
    for match in _TOKEN.finditer(text):
        kind = match.lastgroup
        token = match.group()
        if kind == "word":
            split = _SPLIT_WORDS.get(token.lower())
            if split:
                tokens.extend(split)
                continue
            clitic = _CLITIC.match(token)
            if clitic:
                tokens.extend((clitic.group(1).lower(), clitic.group(2).lower().replace("\u2019", "'")))
                continue
        elif kind == "quote":
            if token == '"':
                token = "``" if open_quote else "''"
                open_quote = not open_quote
        elif kind == "other":
            token = _BRACKETS.get(token, "'" if token == "\u2019" else token)
        tokens.append(token.lower())
    return tokens


def coco_tokenize(text: str) -> list[str]:
    """Tokens as pycocoevalcap feeds them to BLEU, METEOR and CIDEr (PTB minus punctuation)."""
    return [token for token in ptb_tokens(text) if token not in COCO_PUNCTUATION]


_ROUGE_NON_ALNUM = re.compile(r"[^a-z0-9]+")


def rouge_tokenize(text: str, stemmer=None) -> list[str]:
    """rouge-score's DefaultTokenizer: lower-case, keep ASCII [a-z0-9] runs, stem words over 3 chars."""
    tokens = _ROUGE_NON_ALNUM.sub(" ", text.lower()).split()
    if stemmer is not None:
        tokens = [stemmer.stem(token) if len(token) > 3 else token for token in tokens]
        tokens = [token for token in tokens if _ROUGE_NON_ALNUM.search(token) is None and token]
    return tokens
