"""Token ids to caption text one token at a time, in O(1) work per token.

Decoding the whole growing prefix after every token (what `_make_caption` used to do) costs
O(n) per token and O(n^2) per caption. Like vLLM's and TGI's detokenizers, `IncrementalDetokenizer`
decodes only a short window that ends at the new token and keeps the text the new token added to
that window. A window of a few tokens carries everything decoding looks at across token borders
(WordPiece "##" joins, "a ." -> "a." clean-up, byte-level pieces of one character), so the pieces
equal the quadratic decode's. A window whose text ends in an unfinished UTF-8 character
(U+FFFD) holds its text back until the character is complete, instead of emitting the
replacement character and then text that does not continue the caption.
"""

from __future__ import annotations

from typing import Any, Iterable

LOOKBACK = 4
"""Tokens of context kept before the new one (vLLM uses 5): a WordPiece join or a clean-up rule
looks one token back, a UTF-8 character spans at most 4 byte tokens."""

_UNFINISHED = "\ufffd"
_MAX_HELD = 4
"""A UTF-8 character is at most 4 bytes: ids that still decode to U+FFFD after that are
emitted as they are (a model can emit bytes that never form a character)."""


class IncrementalDetokenizer:
    """Feeds token ids, returns the text each one adds; special tokens add nothing.

    One decode of a window of at most 2 x `lookback` tokens per token: the window's text
    before the new token is remembered from the previous step, and the window start moves up
    (one extra decode) only every `lookback` tokens.
    """

    def __init__(self, tokenizer: Any, special_ids: Iterable[int] | None = None,
                 lookback: int = LOOKBACK) -> None:
        self._tokenizer = tokenizer
        self.special = frozenset(tokenizer.all_special_ids if special_ids is None else special_ids)
        self._lookback = lookback
        self.ids: list[int] = []  # the kept (non-special) ids so far
        self._prefix = 0  # window start
        self._read = 0  # ids before this are in the emitted text
        self._prefix_text = ""  # decode of ids[_prefix:_read]
        self.text = ""  # every piece so far, joined

    def push(self, token_id: int) -> str:
        """The text `token_id` adds to the caption ("" for a special or a held-back token)."""
        if token_id in self.special:
            return ""
        self.ids.append(token_id)
        after = self._decode(self.ids[self._prefix :])
        if after.endswith(_UNFINISHED) and len(self.ids) - self._read < _MAX_HELD:
            return ""  # part of a multi-byte character: wait for the rest
        if not after.startswith(self._prefix_text):
            # Decoding changed text already shown: fall back to the whole caption's decode.
            return self._resync()
        piece = after[len(self._prefix_text) :]
        self.text += piece
        self._advance(after)
        return piece

    def decode_all(self) -> str:
        """The whole text of the kept ids in one decode (what the quadratic path ended with)."""
        return self._decode(self.ids)

    def _advance(self, window_text: str) -> None:
        self._read = len(self.ids)
        if self._read - self._prefix > 2 * self._lookback:
            self._prefix = self._read - self._lookback
            self._prefix_text = self._decode(self.ids[self._prefix : self._read])
        else:
            self._prefix_text = window_text

    def _resync(self) -> str:
        whole = self._decode(self.ids)
        piece = whole[len(self.text) :] if whole.startswith(self.text) else whole
        self.text = whole
        self._prefix = 0
        self._advance(whole)
        return piece

    def _decode(self, ids: list[int]) -> str:
        return self._tokenizer.decode(ids, skip_special_tokens=True) if ids else ""
