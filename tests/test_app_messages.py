"""Model cards that cannot caption say so in plain words, with the command-line form folded."""

from __future__ import annotations

from pathlib import Path

from PIL import Image

from medcap.app.cards import CaptionCard, caption_card_html
from medcap.app.messages import explain, explain_entry
from medcap.app.models import ModelPool
from medcap.models import resolve_spec

NO_NETWORK = "the hub is unreachable (huggingface.co:443: Network is unreachable)"


def test_a_model_that_is_not_downloaded_is_explained_for_an_app_user() -> None:
    spec = resolve_spec("blip").with_overrides(source="nobody/blip-not-cached")
    problem = explain(spec, "The model 'nobody/blip-not-cached' is not in the local Hugging Face "
                      "cache ... `--model NAME=/path/to/folder`", lambda: NO_NETWORK)
    assert problem.text.startswith("The BLIP model is not downloaded and there is no internet "
                                   "connection to the Hugging Face hub here.")
    assert "MEDCAP_MODELS=blip=/path/to/that/folder" in problem.text
    assert "--model" not in problem.text and "--model" in problem.detail
    offline = explain(spec, "x", lambda: "offline mode is on (HF_HUB_OFFLINE=1)")
    assert "the app is set to work offline" in offline.text


def test_a_missing_folder_and_a_missing_adapter_in_one_sentence_each(tmp_path: Path) -> None:
    gone = resolve_spec("qwen2-vl", str(tmp_path / "qwen"))
    assert explain(gone, "The model directory ... does not exist.").text.startswith(
        f"The Qwen2-VL model folder {tmp_path / 'qwen'} is not on this machine.")
    lora = explain_entry("blip2-lora", "'blip2-lora' needs a LoRA adapter: pass --adapter ...")
    assert lora.text == ("BLIP-2 (blip2-lora) needs a LoRA adapter from fine-tuning, and none is "
                         "set. Set MEDCAP_BLIP2_ADAPTER to the adapter folder, or choose blip2 "
                         "for BLIP-2 without one.")
    assert lora.detail.startswith("'blip2-lora' needs a LoRA adapter: pass --adapter")
    unknown = explain_entry("mystery=/nowhere", "Cannot tell which model family '/nowhere' is")
    assert unknown.text.startswith("Cannot tell") and unknown.detail == ""


def test_card_shows_the_plain_words_and_folds_the_technical_form() -> None:
    card = CaptionCard(model="blip2-lora", error="Needs <an> adapter.", detail="--adapter x=<DIR>")
    rendered = caption_card_html(card)
    assert "⚠ Needs &lt;an&gt; adapter.</div><details" in rendered
    assert "<summary>Technical details</summary>--adapter x=&lt;DIR&gt;</details>" in rendered
    assert "<details" not in caption_card_html(CaptionCard(model="m", error="plain"))


def test_pool_cards_carry_both_forms(tmp_path: Path) -> None:
    pool = ModelPool([resolve_spec("blip", str(tmp_path / "gone"))],
                     {"blip2-lora": "'blip2-lora' needs a LoRA adapter: pass --adapter ..."})
    gone, lora = pool.caption_cards(["blip", "blip2-lora"], Image.new("RGB", (32, 32)))
    assert gone.error.startswith("The BLIP model folder") and "does not exist" in gone.detail
    assert lora.error.startswith("BLIP-2 (blip2-lora) needs a LoRA adapter") and lora.detail
