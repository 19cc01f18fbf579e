"""Tiny random-weight BLIP, BLIP-2 (+LoRA) and Qwen2-VL models for offline tests.

No hub is reachable in tests, so each builder makes a model from a config, a matching tokenizer
from a small vocabulary, saves both with `save_pretrained` into a directory, and returns that
directory. Tests then load it through the same public path a user's hub id takes
(`medcap.models.resolve_spec(...)` -> `from_pretrained`). Every model builds and generates in well
under a second on a CPU. Other test modules (app, fine-tuning, benchmarks) reuse these builders.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import torch

# Radiology-flavoured words so that generated text and fine-tuning targets look like captions.
WORDS = (
    "a an the of in on with and is are no left right upper lower axial coronal sagittal "
    "ct mri x-ray ultrasound angiography pet scan image view chest abdomen brain head neck "
    "pelvis spine knee liver kidney lung heart mass lesion nodule bright dark small large "
    "shows showing arrow arrows contrast enhanced fracture effusion tumor cyst normal "
    "radiograph frontal lateral demonstrating within at"
).split()
SPECIALS_BERT = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "[DEC]"]


def _seed(seed: int) -> None:
    torch.manual_seed(seed)


def _write_wordpiece_vocab(directory: Path, words: tuple[str, ...] | list[str]) -> Path:
    vocab = directory / "vocab.txt"
    extra = [c for c in "abcdefghijklmnopqrstuvwxyz0123456789.,-"]
    entries = SPECIALS_BERT + sorted(set(words) | set(extra))
    vocab.write_text("\n".join(entries) + "\n", encoding="utf-8")
    return vocab


def _tiny_vit(image_size: int) -> dict:
    """The 2-layer, 32-wide ViT both tiny BLIP and tiny BLIP-2 use as their vision encoder."""
    return {"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2,
            "num_attention_heads": 2, "image_size": image_size, "patch_size": 8}


def build_tiny_blip(directory: str | Path, *, seed: int = 0, image_size: int = 32) -> Path:
    """A ~60k-parameter BlipForConditionalGeneration with a BERT WordPiece tokenizer."""
    from transformers import (
        BertTokenizer,
        BlipConfig,
        BlipForConditionalGeneration,
        BlipImageProcessor,
        BlipProcessor,
    )

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as work:
        tokenizer = BertTokenizer(str(_write_wordpiece_vocab(Path(work), WORDS)), bos_token="[DEC]")
    tokenizer.model_input_names = ["input_ids", "attention_mask"]
    _seed(seed)
    config = BlipConfig(
        vision_config=_tiny_vit(image_size),
        text_config={
            "vocab_size": len(tokenizer),
            "hidden_size": 32,
            "intermediate_size": 64,
            "num_hidden_layers": 2,
            "num_attention_heads": 2,
            "max_position_embeddings": 128,
            "bos_token_id": tokenizer.convert_tokens_to_ids("[DEC]"),
            "pad_token_id": tokenizer.pad_token_id,
            "sep_token_id": tokenizer.sep_token_id,
            "eos_token_id": tokenizer.sep_token_id,
        },
        projection_dim=32,
    )
    model = BlipForConditionalGeneration(config).eval()
    image_processor = BlipImageProcessor(
        size={"height": image_size, "width": image_size}, do_normalize=True
    )
    processor = BlipProcessor(image_processor=image_processor, tokenizer=tokenizer)
    model.save_pretrained(directory)
    processor.save_pretrained(directory)
    return directory


def _bytes_to_unicode() -> dict[int, str]:
    """GPT-2's reversible byte -> printable character table (byte-level BPE alphabet)."""
    printable = list(range(ord("!"), ord("~") + 1)) + list(range(ord("\xa1"), ord("\xac") + 1))
    printable += list(range(ord("\xae"), ord("\xff") + 1))
    chars = printable[:]
    extra = 0
    for byte in range(256):
        if byte not in printable:
            printable.append(byte)
            chars.append(256 + extra)
            extra += 1
    return dict(zip(printable, (chr(c) for c in chars)))


def _byte_level_bpe(
    words: tuple[str, ...] | list[str], specials: list[str]
) -> tuple[dict[str, int], list[tuple[str, str]]]:
    """Vocab and merges for a byte-level BPE tokenizer: every byte, plus each word (with and
    without its leading space) merged into a single token, as GPT-2 / Qwen2 tokenizers work."""
    byte_chars = list(_bytes_to_unicode().values())
    vocab: dict[str, int] = {}
    for tok in specials:
        vocab[tok] = len(vocab)
    for ch in byte_chars:
        vocab.setdefault(ch, len(vocab))
    merges: list[tuple[str, str]] = []
    space = _bytes_to_unicode()[ord(" ")]
    for word in sorted(set(words)):
        for piece in (word, space + word):
            current = piece[0]
            for ch in piece[1:]:
                merged = current + ch
                if merged not in vocab:
                    merges.append((current, ch))
                    vocab[merged] = len(vocab)
                current = merged
    return vocab, merges


def build_tiny_blip2(directory: str | Path, *, seed: int = 0, image_size: int = 32) -> Path:
    """A tiny Blip2ForConditionalGeneration: small ViT + Q-Former + a 2-layer OPT decoder."""
    from transformers import (
        Blip2Config,
        Blip2ForConditionalGeneration,
        Blip2Processor,
        BlipImageProcessor,
    )

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    from transformers import GPT2Tokenizer

    vocab, merges = _byte_level_bpe(WORDS, ["<pad>", "</s>", "<unk>"])
    tokenizer = GPT2Tokenizer(vocab=vocab, merges=merges)
    tokenizer.pad_token = "<pad>"
    tokenizer.eos_token = "</s>"
    tokenizer.bos_token = "</s>"
    tokenizer.unk_token = "<unk>"
    tokenizer.padding_side = "left"
    num_query_tokens = 4
    image_processor = BlipImageProcessor(
        size={"height": image_size, "width": image_size}, do_normalize=True
    )
    processor = Blip2Processor(
        image_processor=image_processor, tokenizer=tokenizer, num_query_tokens=num_query_tokens
    )
    image_token_id = processor.tokenizer.convert_tokens_to_ids("<image>")
    _seed(seed)
    config = Blip2Config(
        vision_config=_tiny_vit(image_size),
        qformer_config={
            "hidden_size": 32,
            "num_hidden_layers": 2,
            "num_attention_heads": 2,
            "intermediate_size": 64,
            "encoder_hidden_size": 32,
            "vocab_size": 64,
        },
        text_config={
            "model_type": "opt",
            "vocab_size": len(processor.tokenizer),
            "hidden_size": 32,
            "ffn_dim": 64,
            "num_hidden_layers": 2,
            "num_attention_heads": 2,
            "max_position_embeddings": 128,
            "word_embed_proj_dim": 32,
            "pad_token_id": processor.tokenizer.pad_token_id,
            "bos_token_id": processor.tokenizer.bos_token_id,
            "eos_token_id": processor.tokenizer.eos_token_id,
        },
        num_query_tokens=num_query_tokens,
        image_token_index=image_token_id,
    )
    model = Blip2ForConditionalGeneration(config).eval()
    model.save_pretrained(directory)
    processor.save_pretrained(directory)
    return directory


def build_tiny_lora_adapter(
    base_dir: str | Path, directory: str | Path, *, seed: int = 1, rank: int = 4
) -> Path:
    """A LoRA adapter on the tiny BLIP-2's OPT attention (q/v projections), saved with peft.

    The LoRA B matrices are randomised (peft initialises them to zero) so that applying the
    adapter visibly changes the model's output, which the tests check.
    """
    from peft import LoraConfig, get_peft_model
    from transformers import Blip2ForConditionalGeneration

    base = Blip2ForConditionalGeneration.from_pretrained(str(base_dir))
    config = LoraConfig(
        r=rank,
        lora_alpha=2 * rank,
        target_modules=["q_proj", "v_proj"],
        lora_dropout=0.0,
        bias="none",
    )
    peft_model = get_peft_model(base, config)
    _seed(seed)
    with torch.no_grad():
        for name, param in peft_model.named_parameters():
            if "lora_B" in name:
                param.normal_(0.0, 0.5)
    directory = Path(directory)
    peft_model.save_pretrained(str(directory))
    return directory


QWEN_SPECIALS = [
    "<|endoftext|>",
    "<|im_start|>",
    "<|im_end|>",
    "<|vision_start|>",
    "<|vision_end|>",
    "<|image_pad|>",
    "<|video_pad|>",
]
QWEN_CHAT_TEMPLATE = (
    "{% for message in messages %}<|im_start|>{{ message['role'] }}\n"
    "{% if message['content'] is string %}{{ message['content'] }}"
    "{% else %}{% for content in message['content'] %}"
    "{% if content['type'] == 'image' or 'image' in content %}"
    "<|vision_start|><|image_pad|><|vision_end|>"
    "{% elif content['type'] == 'text' %}{{ content['text'] }}{% endif %}"
    "{% endfor %}{% endif %}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


def build_tiny_qwen2_vl(directory: str | Path, *, seed: int = 0, hidden_size: int = 32,
                        num_layers: int = 2) -> Path:
    """A tiny Qwen2VLForConditionalGeneration with a Qwen2-style BPE tokenizer and chat template."""
    from transformers import (
        Qwen2Tokenizer,
        Qwen2VLConfig,
        Qwen2VLForConditionalGeneration,
        Qwen2VLImageProcessor,
        Qwen2VLProcessor,
        Qwen2VLVideoProcessor,
    )

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    words = list(WORDS) + ["user", "assistant", "system", "describe", "this", "medical", "detail"]
    vocab, merges = _byte_level_bpe(words, [])
    tokenizer = Qwen2Tokenizer(
        vocab=vocab,
        merges=merges,
        unk_token=None,
        bos_token=None,
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
    )
    tokenizer.add_special_tokens({"additional_special_tokens": QWEN_SPECIALS})
    tokenizer.padding_side = "left"
    tokenizer.chat_template = QWEN_CHAT_TEMPLATE
    ids = {tok: tokenizer.convert_tokens_to_ids(tok) for tok in QWEN_SPECIALS}
    image_processor = Qwen2VLImageProcessor(
        min_pixels=28 * 28 * 4, max_pixels=28 * 28 * 16, patch_size=14, merge_size=2
    )
    processor = Qwen2VLProcessor(
        image_processor=image_processor,
        tokenizer=tokenizer,
        video_processor=Qwen2VLVideoProcessor(),
        chat_template=QWEN_CHAT_TEMPLATE,
    )
    head_dim = hidden_size // 2  # 2 heads
    quarter = head_dim // 4
    _seed(seed)
    config = Qwen2VLConfig(
        text_config={
            "vocab_size": len(tokenizer),
            "hidden_size": hidden_size,
            "intermediate_size": 2 * hidden_size,
            "num_hidden_layers": num_layers,
            "num_attention_heads": 2,
            "num_key_value_heads": 1,
            "max_position_embeddings": 512,
            "rope_scaling": {
                "type": "mrope",
                "mrope_section": [quarter, quarter, head_dim // 2 - 2 * quarter],
            },
            "bos_token_id": ids["<|endoftext|>"],
            "eos_token_id": ids["<|im_end|>"],
            "pad_token_id": ids["<|endoftext|>"],
        },
        vision_config={
            "depth": 2,
            "embed_dim": 32,
            "hidden_size": hidden_size,
            "num_heads": 2,
            "mlp_ratio": 2,
            "patch_size": 14,
            "spatial_merge_size": 2,
            "temporal_patch_size": 2,
            "in_channels": 3,
        },
        image_token_id=ids["<|image_pad|>"],
        video_token_id=ids["<|video_pad|>"],
        vision_start_token_id=ids["<|vision_start|>"],
        vision_end_token_id=ids["<|vision_end|>"],
    )
    model = Qwen2VLForConditionalGeneration(config).eval()
    model.generation_config.eos_token_id = ids["<|im_end|>"]
    model.generation_config.pad_token_id = ids["<|endoftext|>"]
    model.save_pretrained(directory)
    processor.save_pretrained(directory)
    return directory
