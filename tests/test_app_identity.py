"""Who a reviewer is (#15 item 5): with sign-in on, nobody saves or reads under another name,
in the page's handlers or through the API; locally, typed names, with a note that says they are
not verified.

The served OAuth app runs Gradio's own sign-in outside a Space (its mocked `/login/*` routes,
given a fake account instead of the machine's Hugging Face login): a client that went through
`/login/huggingface` carries the session cookie a Space would give it.
"""

from __future__ import annotations

import contextlib
import re
from pathlib import Path
from typing import Iterator

import httpx
import pytest

from medcap.app.identity import (
    NONE,
    OAUTH,
    ReviewerIdentityError,
    UNVERIFIED_NOTE,
    auth_mode,
    resolve_reviewer,
)
from medcap.app.models import ModelPool
from medcap.app.options import AppOptions
from medcap.app.studio import Studio
from medcap.config import Settings
from medcap.review import ReviewKey
from tests.test_review_studio import RESULTS

pytestmark = pytest.mark.filterwarnings("ignore:Gradio does not support OAuth")

ALICE = {"sub": "1", "name": "Alice Example", "preferred_username": "alice-hf",
         "profile": "https://huggingface.co/alice-hf", "picture": ""}


def make_studio(tmp_path: Path, auth: str) -> Studio:
    results = tmp_path / "results.csv"
    RESULTS.to_csv(results, index=False)
    settings = Settings(model_names=[], data_source=None, reviews_db=tmp_path / "r.sqlite",
                        runs_dir=tmp_path / "runs")
    return Studio(settings, AppOptions(results_csv=results, dataset_label="roco", examples=[],
                                       export_dir=tmp_path / "exports", auth=auth),
                  pool=ModelPool([]))


# -- the rule ------------------------------------------------------------------------------------

def test_mode_follows_the_space_unless_set() -> None:
    assert auth_mode({}) == NONE
    assert auth_mode({"SPACE_ID": "me/medcap"}) == NONE, "a Space without hf_oauth"
    assert auth_mode({"SPACE_ID": "me/medcap", "OAUTH_CLIENT_ID": "x"}) == OAUTH
    assert auth_mode({"SPACE_ID": "me/medcap", "OAUTH_CLIENT_ID": "x",
                      "MEDCAP_AUTH": "none"}) == NONE
    assert auth_mode({"MEDCAP_AUTH": "OAuth"}) == OAUTH
    with pytest.raises(ValueError, match="MEDCAP_AUTH must be one of"):
        auth_mode({"MEDCAP_AUTH": "password"})
    assert AppOptions.from_env({"MEDCAP_AUTH": "oauth"}).auth == OAUTH


def test_signed_in_account_is_the_reviewer_and_no_other_name_is() -> None:
    import gradio as gr

    profile = gr.OAuthProfile(ALICE)
    assert resolve_reviewer("", profile, OAUTH) == "alice-hf"
    assert resolve_reviewer(" ALICE-HF ", profile, OAUTH) == "alice-hf"
    with pytest.raises(ReviewerIdentityError, match="signed in as alice-hf.*'Dr Bob'"):
        resolve_reviewer("Dr Bob", profile, OAUTH)
    with pytest.raises(ReviewerIdentityError, match="Alice Example"):
        resolve_reviewer("Alice Example", profile, OAUTH)  # the display name is not unique
    with pytest.raises(ReviewerIdentityError, match="(?i)sign in"):
        resolve_reviewer("Dr Bob", None, OAUTH)
    with pytest.raises(ReviewerIdentityError, match="(?i)sign in"):
        resolve_reviewer("", None, OAUTH)
    assert resolve_reviewer("", None, OAUTH, required=False) == "", "browsing signed out"
    assert resolve_reviewer("Dr Bob", profile, NONE) == "Dr Bob", "typed names locally"


def test_api_functions_refuse_another_name_and_use_the_signed_in_one(tmp_path) -> None:
    import gradio as gr

    from medcap.app.tabs.review import review_api

    studio = make_studio(tmp_path, OAUTH)
    api = review_api(studio)
    alice = gr.OAuthProfile(ALICE)
    studio.save_review("0012", "blip", "Dr Bob", "correct", "", "Bob's note", 0)

    refused = api["review_save"]("0012", "blip", "Dr Bob", "unusable", "", "", 1, profile=alice)
    assert not refused["saved"] and "signed in as alice-hf" in refused["message"]
    assert studio.store.get(ReviewKey("roco", "0012", "blip", "Dr Bob")).verdict == "correct"
    assert "signed in as alice-hf" in api["review_get"]("0012", "blip", "Dr Bob",
                                                        profile=alice)["message"]
    assert "signed in" in api["next_for_me"]("Dr Bob", profile=alice)["message"]
    assert not api["preference_save"]("0012", "blip", "qwen2-vl", "Dr Bob", "tie",
                                      profile=alice)["saved"]

    saved = api["review_save"]("0012", "blip", "", "minor error", "", "", 0, profile=alice)
    assert saved["saved"] and saved["reviewer"] == "alice-hf"
    assert api["review_get"]("0012", "blip", "", profile=alice)["verdict"] == "minor error"
    for call in (lambda: api["review_save"]("0012", "blip", "alice-hf", "correct", "", "", 0),
                 lambda: api["preference_save"]("0012", "blip", "qwen2-vl", "", "tie")):
        assert re.search("(?i)sign in", call()["message"])
    assert [r.key.reviewer for r in studio.store.iter_reviews()] in (
        ["Dr Bob", "alice-hf"], ["alice-hf", "Dr Bob"])


# -- served ----------------------------------------------------------------------------------------

@contextlib.contextmanager
def serving(tmp_path: Path, auth: str, monkeypatch) -> Iterator[tuple[str, Studio]]:
    import gradio.oauth

    import app

    monkeypatch.setenv("GRADIO_TEMP_DIR", str(tmp_path / "gradio-tmp"))
    # Outside a Space, Gradio signs the browser in as the machine's Hugging Face account.
    monkeypatch.setattr(gradio.oauth, "_get_mocked_oauth_info", lambda: {
        "access_token": "test", "token_type": "bearer", "scope": "openid profile",
        "expires_at": 2_000_000_000, "userinfo": ALICE})
    studio = make_studio(tmp_path, auth)
    demo = app.build_demo(studio)
    _, url, _ = demo.launch(prevent_thread_lock=True, server_name="127.0.0.1", quiet=True,
                            **app.LAUNCH_OPTIONS)
    try:
        yield url.rstrip("/"), studio
    finally:
        demo.close()


def component(config: dict, elem_id: str) -> dict:
    return next(c for c in config["components"] if c.get("props", {}).get("elem_id") == elem_id)


def test_served_with_sign_in_the_api_acts_only_as_the_signed_in_account(tmp_path,
                                                                        monkeypatch) -> None:
    from gradio_client import Client

    with serving(tmp_path, OAUTH, monkeypatch) as (url, studio):
        config = httpx.get(url + "/config").json()
        assert component(config, "reviewer")["props"]["interactive"] is False
        assert any(c["props"].get("elem_id") == "login" for c in config["components"])
        assert "not verified" not in str(component(config, "reviewer-note")["props"]["value"])

        anonymous = Client(url, verbose=False)
        answer = anonymous.predict("0012", "blip", "Dr Alice", "correct", "", "", 0,
                                   api_name="/review_save")
        assert not answer["saved"] and re.search("(?i)sign in", answer["message"])
        assert "sign in" in anonymous.predict("Dr Alice", api_name="/next_for_me")[
            "message"].lower()

        login = httpx.get(url + "/login/huggingface", follow_redirects=False)
        login = httpx.get(url + login.headers["location"].removeprefix(url),
                          follow_redirects=False)
        session = login.cookies["session"]
        alice = Client(url, verbose=False, headers={"Cookie": f"session={session}"})
        answer = alice.predict("0012", "blip", "Dr Alice", "unusable", "", "", 0,
                               api_name="/review_save")
        assert not answer["saved"] and "signed in as alice-hf" in answer["message"]
        answer = alice.predict("0012", "blip", "", "major error", "", "", 0,
                               api_name="/review_save")
        assert answer["saved"] and answer["reviewer"] == "alice-hf", answer["message"]
        assert [r.key.reviewer for r in studio.store.iter_reviews()] == ["alice-hf"]
        # The page's own endpoint: Alice's reviews are not readable by typing her name.
        opened = anonymous.predict("0012", "alice-hf", False, api_name="/open_item")
        assert "sign in" in str(opened).lower()


def test_served_locally_names_are_typed_and_said_to_be_unverified(tmp_path,
                                                                   monkeypatch) -> None:
    from gradio_client import Client

    with serving(tmp_path, NONE, monkeypatch) as (url, studio):
        config = httpx.get(url + "/config").json()
        assert component(config, "reviewer")["props"]["interactive"] is not False
        assert "Names are not verified" in component(config, "reviewer-note")["props"]["value"]
        assert UNVERIFIED_NOTE.split(":")[0] in component(config, "reviewer-note")["props"]["value"]
        assert not any(c["props"].get("elem_id") == "login" for c in config["components"])
        answer = Client(url, verbose=False).predict("0012", "blip", "Dr Alice", "correct", "",
                                                    "", 0, api_name="/review_save")
        assert answer["saved"] and answer["reviewer"] == "Dr Alice"
