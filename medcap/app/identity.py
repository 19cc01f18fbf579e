"""Who a reviewer is: the one rule every save, read and queue call goes through.

Two modes (``MEDCAP_AUTH``):

- ``oauth``: the reviewer is the Hugging Face account signed in with the Space's OAuth
  (`hf_oauth: true` in the README front matter). A name typed in a form or sent to an API
  endpoint must be that account's, or the call is refused; without a sign-in, saves are refused.
  The default on a Space where OAuth is configured (``SPACE_ID`` and ``OAUTH_CLIENT_ID`` set).
- ``none``: the typed name is the reviewer, unverified (a workstation, a trusted group). The page
  says so beside the name box. The default everywhere else.

No gradio import: the profile is anything with a ``username`` (``gr.OAuthProfile``) or a mapping
with ``preferred_username`` (the OpenID user info it is built from).
"""

from __future__ import annotations

import os
from typing import Any, Mapping

from medcap.review import ReviewValidationError, normalize_reviewer, reviewer_key

OAUTH = "oauth"
NONE = "none"
AUTH_MODES = (OAUTH, NONE)

UNVERIFIED_NOTE = ("Names are not verified: anyone can type any name, and read or change that "
                   "name's reviews.")
"""What the page says beside the name box when names are typed (mode ``none``)."""


class ReviewerIdentityError(ReviewValidationError):
    """The caller may not act as the reviewer named; the message says who they may be."""


def auth_mode(env: Mapping[str, str] | None = None) -> str:
    """``MEDCAP_AUTH`` when set, else ``oauth`` on a Space with OAuth configured, else ``none``."""
    env = os.environ if env is None else env
    chosen = env.get("MEDCAP_AUTH", "").strip().lower()
    if chosen:
        if chosen not in AUTH_MODES:
            raise ValueError(f"MEDCAP_AUTH must be one of {', '.join(AUTH_MODES)}, "
                             f"not {chosen[:40]!r}.")
        return chosen
    return OAUTH if env.get("SPACE_ID") and env.get("OAUTH_CLIENT_ID") else NONE


def signed_in_name(profile: Any) -> str:
    """The account name of a signed-in profile ("" for none): the unique Hugging Face username,
    not the display name (two people can share "Alice")."""
    if profile is None:
        return ""
    name = getattr(profile, "username", None)
    if name is None and isinstance(profile, Mapping):
        name = profile.get("preferred_username")
    return normalize_reviewer(str(name or ""))


def resolve_reviewer(typed_name: str | None, profile: Any, mode: str, *,
                     required: bool = True) -> str:
    """The reviewer a call acts as, or `ReviewerIdentityError`.

    Mode ``none``: `typed_name` as it is (the review store validates it). Mode ``oauth``: the
    signed-in account; `typed_name` may be empty (meaning "me") or that account's name (any
    case); another name is refused. Without a sign-in: refused when `required` (saves, the
    queue, reading one's review), else "" (browsing without reviews of one's own).
    """
    if mode != OAUTH:
        return typed_name or ""
    typed = normalize_reviewer(typed_name)
    account = signed_in_name(profile)
    if not account:
        if required or typed:
            raise ReviewerIdentityError(
                "Sign in with Hugging Face first (the button beside the reviewer box): on "
                "this server, reviews belong to signed-in accounts.")
        return ""
    if typed and reviewer_key(typed) != reviewer_key(account):
        raise ReviewerIdentityError(
            f"Refused: you are signed in as {account}, so you can only act as {account}, "
            f"not as {typed[:80]!r}.")
    return account
