"""Shared benchmark helpers: random-weight models at real sizes, test images, peak memory.

No hub is reachable here, so benchmark models are built from configs with random weights (the
cost of a forward pass does not depend on the values once the number of generated tokens is
fixed). Each size is a small dataclass with a `tiny` preset, so the smoke test exercises the very
same builder code in well under a second. Built models are cached on disk by a hash of their
config, so a second benchmark run skips the (slow) build and save.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from tests.support.tiny_models import (  # reuse the offline tokenizer recipes
    QWEN_CHAT_TEMPLATE,
    QWEN_SPECIALS,
    SPECIALS_BERT,
    WORDS,
    _byte_level_bpe,
    _write_wordpiece_vocab,
)

DEFAULT_CACHE = Path.home() / ".cache" / "medcap-bench"
PATCH_PIXELS = 28 * 28  # Qwen2-VL: one visual token per 28x28 pixels (14px patches, 2x2 merge)


# ---------------------------------------------------------------------------- sizes
@dataclass(frozen=True)
class BlipSize:
    """BLIP captioning model dimensions; the defaults are BLIP-base (BlipConfig defaults)."""

    vision_hidden: int = 768
    vision_layers: int = 12
    vision_heads: int = 12
    vision_intermediate: int = 3072
    image_size: int = 384
    patch_size: int = 16
    text_hidden: int = 768
    text_layers: int = 12
    text_heads: int = 12
    text_intermediate: int = 3072
    vocab_size: int = 30524


BLIP_BASE = BlipSize()
BLIP_TINY = BlipSize(vision_hidden=32, vision_layers=2, vision_heads=2, vision_intermediate=64,
                     image_size=32, patch_size=8, text_hidden=32, text_layers=2, text_heads=2,
                     text_intermediate=64, vocab_size=400)


@dataclass(frozen=True)
class QwenSize:
    """Qwen2-VL dimensions. Defaults: Qwen2-VL-2B's vision tower (675M) in front of a
    Qwen2-0.5B-sized language model (hidden 896, 24 layers, 14 heads, 2 KV heads)."""

    vision_depth: int = 32
    vision_embed: int = 1280
    vision_heads: int = 16
    vision_mlp_ratio: int = 4
    text_hidden: int = 896
    text_layers: int = 24
    text_heads: int = 14
    text_kv_heads: int = 2
    text_intermediate: int = 4864
    vocab_size: int = 151936
    min_pixels: int = 56 * 56
    max_pixels: int = 224 * 224  # 64 visual tokens per image

    @property
    def head_dim(self) -> int:
        return self.text_hidden // self.text_heads

    @property
    def mrope_section(self) -> list[int]:
        """Qwen2-VL's [16, 24, 24] split of the rotary half-dimension, scaled to head_dim."""
        half = self.head_dim // 2
        first = half // 4
        rest = half - first
        return [first, rest // 2, rest - rest // 2]


QWEN2_VL_05B_LM = QwenSize()
# Qwen/Qwen2-VL-2B-Instruct at real size, with the registry's 448x448 budget (256 visual tokens).
QWEN2_VL_2B = QwenSize(text_hidden=1536, text_layers=28, text_heads=12, text_kv_heads=2,
                       text_intermediate=8960, max_pixels=448 * 448)
QWEN2_VL_TINY = QwenSize(vision_depth=2, vision_embed=32, vision_heads=2, vision_mlp_ratio=2,
                         text_hidden=32, text_layers=2, text_heads=2, text_kv_heads=1,
                         text_intermediate=64, vocab_size=600, max_pixels=28 * 28 * 4)


@dataclass(frozen=True)
class Blip2Size:
    """BLIP-2 dimensions; the defaults are Salesforce/blip2-opt-6.7b (ViT-g/14 at 224 px, a
    12-layer Q-Former with 32 queries, OPT-6.7B). `save_dtype` bfloat16 halves the 31 GB an fp32
    copy would take on disk; the seed loop still loads it in fp32."""

    vision_hidden: int = 1408
    vision_layers: int = 39
    vision_heads: int = 16
    vision_intermediate: int = 6144
    image_size: int = 224
    patch_size: int = 14
    qformer_hidden: int = 768
    qformer_layers: int = 12
    qformer_heads: int = 12
    qformer_intermediate: int = 3072
    num_query_tokens: int = 32
    text_hidden: int = 4096
    text_layers: int = 32
    text_heads: int = 32
    text_ffn: int = 16384
    vocab_size: int = 50272
    save_dtype: str = "bfloat16"


BLIP2_OPT_67B = Blip2Size()
BLIP2_TINY = Blip2Size(vision_hidden=32, vision_layers=2, vision_heads=2, vision_intermediate=64,
                       image_size=32, patch_size=8, qformer_hidden=32, qformer_layers=2,
                       qformer_heads=2, qformer_intermediate=64, num_query_tokens=4,
                       text_hidden=32, text_layers=2, text_heads=2, text_ffn=64, vocab_size=600,
                       save_dtype="float32")


def visual_tokens(width: int, height: int, size: QwenSize) -> int:
    """Visual tokens Qwen2-VL spends on one image after its max_pixels resize."""
    from transformers.models.qwen2_vl.image_processing_qwen2_vl import smart_resize

    h, w = smart_resize(height, width, factor=28, min_pixels=size.min_pixels,
                        max_pixels=size.max_pixels)
    return (h // 28) * (w // 28)


def count_parameters(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


# ---------------------------------------------------------------------------- building
def _cached_dir(cache: Path, family: str, size: object) -> tuple[Path, bool]:
    digest = hashlib.sha1(json.dumps(asdict(size), sort_keys=True).encode()).hexdigest()[:10]
    directory = cache / f"{family}-{digest}"
    return directory, (directory / "DONE").is_file()


def _random_init(model: torch.nn.Module, seed: int) -> None:
    """Fast stand-in for `init_weights` on a 1B model: N(0, 0.02) matrices, unit norms, zero biases."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, param in model.named_parameters():
            if param.ndim >= 2:
                param.normal_(0.0, 0.02, generator=generator)
            elif "norm" in name and name.endswith("weight"):
                param.fill_(1.0)
            else:
                param.zero_()


def _instantiate(model_class: type, config: object, seed: int,
                 dtype: torch.dtype = torch.float32) -> torch.nn.Module:
    """Build without transformers' slow init, directly in `dtype` (a 7.8B model in bf16 needs
    16 GB of RAM instead of 31 GB), then fill in random weights."""
    from transformers.initialization import no_init_weights

    previous = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        with no_init_weights():
            model = model_class(config)
    finally:
        torch.set_default_dtype(previous)
    _random_init(model, seed)
    if hasattr(model, "tie_weights"):
        model.tie_weights()
    return model.eval()


def _finish(model: torch.nn.Module, processor: object, directory: Path) -> Path:
    tmp = directory.with_name(directory.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    model.save_pretrained(tmp)
    processor.save_pretrained(tmp)
    (tmp / "DONE").write_text(f"{count_parameters(model)}\n")
    shutil.rmtree(directory, ignore_errors=True)
    tmp.rename(directory)
    return directory


def build_blip(cache: Path, size: BlipSize = BLIP_BASE, seed: int = 0) -> Path:
    """A saved random-weight BlipForConditionalGeneration of `size` (cached)."""
    from transformers import (BertTokenizer, BlipConfig, BlipForConditionalGeneration,
                              BlipImageProcessor, BlipProcessor)

    directory, ready = _cached_dir(Path(cache), "blip", size)
    if ready:
        return directory
    directory.parent.mkdir(parents=True, exist_ok=True)
    words = sorted(set(WORDS))
    base = len(SPECIALS_BERT) + len(set(words) | set("abcdefghijklmnopqrstuvwxyz0123456789.,-"))
    filler = [f"[unused{i}]" for i in range(max(0, size.vocab_size - base))]
    work = directory.with_name(directory.name + ".vocab")
    work.mkdir(parents=True, exist_ok=True)
    tokenizer = BertTokenizer(str(_write_wordpiece_vocab(work, words + filler)), bos_token="[DEC]")
    shutil.rmtree(work, ignore_errors=True)
    tokenizer.model_input_names = ["input_ids", "attention_mask"]
    config = BlipConfig(
        vision_config={"hidden_size": size.vision_hidden, "num_hidden_layers": size.vision_layers,
                       "num_attention_heads": size.vision_heads,
                       "intermediate_size": size.vision_intermediate,
                       "image_size": size.image_size, "patch_size": size.patch_size},
        text_config={"vocab_size": len(tokenizer), "hidden_size": size.text_hidden,
                     "num_hidden_layers": size.text_layers,
                     "num_attention_heads": size.text_heads,
                     "intermediate_size": size.text_intermediate,
                     "encoder_hidden_size": size.vision_hidden,
                     "bos_token_id": tokenizer.convert_tokens_to_ids("[DEC]"),
                     "pad_token_id": tokenizer.pad_token_id,
                     "sep_token_id": tokenizer.sep_token_id,
                     "eos_token_id": tokenizer.sep_token_id},
        projection_dim=min(512, size.text_hidden),
    )
    model = _instantiate(BlipForConditionalGeneration, config, seed)
    image_processor = BlipImageProcessor(size={"height": size.image_size, "width": size.image_size})
    processor = BlipProcessor(image_processor=image_processor, tokenizer=tokenizer)
    return _finish(model, processor, directory)


def build_qwen2_vl(cache: Path, size: QwenSize = QWEN2_VL_05B_LM, seed: int = 0) -> Path:
    """A saved random-weight Qwen2VLForConditionalGeneration of `size` (cached).

    The tokenizer covers the whole vocabulary (filler tokens after a small byte-level BPE), so
    every id a random model emits decodes to text, as with the real 151,936-entry vocabulary.
    """
    from transformers import (Qwen2Tokenizer, Qwen2VLConfig, Qwen2VLForConditionalGeneration,
                              Qwen2VLImageProcessor, Qwen2VLProcessor, Qwen2VLVideoProcessor)

    # Saved in bf16, as the hub's Qwen2-VL-2B-Instruct is: loading it peaks as the real one does.
    directory, ready = _cached_dir(Path(cache), "qwen2-vl-bf16", size)
    if ready:
        return directory
    directory.parent.mkdir(parents=True, exist_ok=True)
    words = list(WORDS) + ["user", "assistant", "system", "describe", "this", "medical", "detail"]
    vocab, merges = _byte_level_bpe(words, [])
    for i in range(size.vocab_size - len(QWEN_SPECIALS) - len(vocab)):
        vocab[f"tok{i}"] = len(vocab)
    tokenizer = Qwen2Tokenizer(vocab=vocab, merges=merges, unk_token=None, bos_token=None,
                               eos_token="<|im_end|>", pad_token="<|endoftext|>")
    tokenizer.add_special_tokens({"additional_special_tokens": QWEN_SPECIALS})
    tokenizer.padding_side = "left"
    tokenizer.chat_template = QWEN_CHAT_TEMPLATE
    ids = {tok: tokenizer.convert_tokens_to_ids(tok) for tok in QWEN_SPECIALS}
    processor = Qwen2VLProcessor(
        image_processor=Qwen2VLImageProcessor(min_pixels=size.min_pixels,
                                              max_pixels=size.max_pixels,
                                              patch_size=14, merge_size=2),
        tokenizer=tokenizer, video_processor=Qwen2VLVideoProcessor(),
        chat_template=QWEN_CHAT_TEMPLATE,
    )
    config = Qwen2VLConfig(
        text_config={
            "vocab_size": max(size.vocab_size, len(tokenizer)),
            "hidden_size": size.text_hidden, "intermediate_size": size.text_intermediate,
            "num_hidden_layers": size.text_layers, "num_attention_heads": size.text_heads,
            "num_key_value_heads": size.text_kv_heads, "max_position_embeddings": 32768,
            "rms_norm_eps": 1e-6,
            "rope_scaling": {"type": "mrope", "mrope_section": size.mrope_section,
                             "rope_theta": 1_000_000.0},
            "bos_token_id": ids["<|endoftext|>"], "eos_token_id": ids["<|im_end|>"],
            "pad_token_id": ids["<|endoftext|>"],
        },
        vision_config={
            "depth": size.vision_depth, "embed_dim": size.vision_embed,
            "hidden_size": size.text_hidden, "num_heads": size.vision_heads,
            "mlp_ratio": size.vision_mlp_ratio, "patch_size": 14, "spatial_merge_size": 2,
            "temporal_patch_size": 2, "in_channels": 3,
        },
        image_token_id=ids["<|image_pad|>"], video_token_id=ids["<|video_pad|>"],
        vision_start_token_id=ids["<|vision_start|>"], vision_end_token_id=ids["<|vision_end|>"],
        tie_word_embeddings=True,  # as in Qwen2-0.5B and Qwen2-VL-2B
    )
    model = _instantiate(Qwen2VLForConditionalGeneration, config, seed, dtype=torch.bfloat16)
    model.generation_config.eos_token_id = ids["<|im_end|>"]
    model.generation_config.pad_token_id = ids["<|endoftext|>"]
    return _finish(model, processor, directory)


def build_blip2(cache: Path, size: Blip2Size = BLIP2_OPT_67B, seed: int = 0) -> Path:
    """A saved random-weight Blip2ForConditionalGeneration of `size` (cached), OPT tokenizer
    padded with filler tokens to the full vocabulary."""
    from transformers import (BlipImageProcessor, Blip2Config, Blip2ForConditionalGeneration,
                              Blip2Processor, GPT2Tokenizer)

    directory, ready = _cached_dir(Path(cache), "blip2", size)
    if ready:
        return directory
    directory.parent.mkdir(parents=True, exist_ok=True)
    vocab, merges = _byte_level_bpe(list(WORDS), ["<pad>", "</s>", "<unk>"])
    for i in range(size.vocab_size - len(vocab) - 1):  # -1: the <image> token the processor adds
        vocab[f"tok{i}"] = len(vocab)
    tokenizer = GPT2Tokenizer(vocab=vocab, merges=merges, pad_token="<pad>", eos_token="</s>",
                              bos_token="</s>", unk_token="<unk>")
    tokenizer.padding_side = "left"
    image_processor = BlipImageProcessor(size={"height": size.image_size, "width": size.image_size})
    processor = Blip2Processor(image_processor=image_processor, tokenizer=tokenizer,
                               num_query_tokens=size.num_query_tokens)
    tokenizer = processor.tokenizer
    config = Blip2Config(
        vision_config={"hidden_size": size.vision_hidden, "num_hidden_layers": size.vision_layers,
                       "num_attention_heads": size.vision_heads,
                       "intermediate_size": size.vision_intermediate,
                       "image_size": size.image_size, "patch_size": size.patch_size},
        qformer_config={"hidden_size": size.qformer_hidden,
                        "num_hidden_layers": size.qformer_layers,
                        "num_attention_heads": size.qformer_heads,
                        "intermediate_size": size.qformer_intermediate,
                        "encoder_hidden_size": size.vision_hidden},
        text_config={"model_type": "opt", "vocab_size": len(tokenizer),
                     "hidden_size": size.text_hidden, "ffn_dim": size.text_ffn,
                     "num_hidden_layers": size.text_layers,
                     "num_attention_heads": size.text_heads, "word_embed_proj_dim": size.text_hidden,
                     "max_position_embeddings": 2048, "pad_token_id": tokenizer.pad_token_id,
                     "bos_token_id": tokenizer.bos_token_id, "eos_token_id": tokenizer.eos_token_id},
        num_query_tokens=size.num_query_tokens,
        image_token_index=tokenizer.convert_tokens_to_ids("<image>"),
    )
    model = _instantiate(Blip2ForConditionalGeneration, config, seed,
                         dtype=getattr(torch, size.save_dtype))
    return _finish(model, processor, directory)


# ---------------------------------------------------------------------------- inputs
def parse_sizes(text: str) -> list[tuple[int, int]]:
    """'512x512,640x480' -> [(512, 512), (640, 480)] (width x height)."""
    sizes = []
    for part in text.split(","):
        width, _, height = part.strip().lower().partition("x")
        sizes.append((int(width), int(height or width)))
    return sizes


def make_images(count: int, sizes: list[tuple[int, int]], seed: int = 0) -> list[Image.Image]:
    """Grey, radiograph-like test images cycling through `sizes` (mixed sizes on purpose)."""
    rng = np.random.default_rng(seed)
    images = []
    for i in range(count):
        width, height = sizes[i % len(sizes)]
        yy, xx = np.mgrid[0:height, 0:width]
        blob = np.exp(-(((xx - width / 2) / (width / 3)) ** 2 + ((yy - height / 2) / (height / 3)) ** 2))
        pixels = 200 * blob + rng.normal(0, 20, (height, width))
        images.append(Image.fromarray(np.clip(pixels, 0, 255).astype("uint8"), mode="L"))
    return images


# ---------------------------------------------------------------------------- memory
class PeakMemory:
    """Peak memory of one benchmark phase: CUDA allocator peak on a GPU, else peak RSS.

    Peak RSS (VmHWM) is reset per phase through /proc/self/clear_refs, so each phase reports its
    own high-water mark, weights included; where that is not allowed, the process-wide
    `ru_maxrss` is reported instead (and said so).
    """

    def __init__(self, device: str) -> None:
        self.cuda = device.startswith("cuda")
        self.resettable = True

    def reset(self) -> None:
        if self.cuda:
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
            return
        try:
            Path("/proc/self/clear_refs").write_text("5")
        except OSError:
            self.resettable = False

    def peak_bytes(self) -> int:
        if self.cuda:
            torch.cuda.synchronize()
            return int(torch.cuda.max_memory_allocated())
        if self.resettable:
            for line in Path("/proc/self/status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
        import resource

        return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss) * 1024

    @property
    def label(self) -> str:
        if self.cuda:
            return "peak CUDA alloc"
        return "peak RSS" if self.resettable else "peak RSS (process)"
