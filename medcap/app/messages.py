"""Why a model card has no caption, in words for the person using the app.

Model loading raises messages written for the command line (`--model NAME=/path`, `hf download`).
On a card the first paragraph says what is missing and what an app user can do (where to put the
files, which setting); the command-line form stays available in a details fold.
"""

from __future__ import annotations

from dataclasses import dataclass

from medcap.app.availability import HubProblem, Unavailable, unavailable_reason
from medcap.models.errors import ModelLoadError
from medcap.models.families import family_traits
from medcap.models.fit import MemoryFit
from medcap.models.loading import estimate_memory
from medcap.models.registry import parse_model_arg, resolve_spec
from medcap.models.spec import ModelSpec


@dataclass(frozen=True)
class CardProblem:
    """`text` for everyone; `detail` (the technical message) folded away."""

    text: str
    detail: str = ""


def model_title(spec: ModelSpec) -> str:
    traits = family_traits(spec.family)
    family = traits.display_name if traits else spec.family
    return family if spec.name in (spec.family, family.lower()) else f"{family} ({spec.name})"


def explain(spec: ModelSpec | None, message: str,
            hub_problem: HubProblem | None = None) -> CardProblem:
    """A card's words for `message` (a ModelLoadError text) about `spec` (None: not resolvable)."""
    if spec is None:
        return CardProblem(message)
    title = model_title(spec)
    if spec.requires_adapter and not spec.adapter:
        return CardProblem(
            f"{title} needs a LoRA adapter from fine-tuning, and none is set. Set "
            f"MEDCAP_BLIP2_ADAPTER to the adapter folder, or choose blip2 for BLIP-2 without one.",
            message)
    reason = unavailable_reason(spec, hub_problem)
    if reason is None:
        return CardProblem(message)
    return CardProblem(_missing_words(title, spec, reason), message)


def explain_entry(entry: str, message: str, hub_problem: HubProblem | None = None) -> CardProblem:
    """The same for a configured entry (`NAME[=SOURCE]`) that did not even resolve to a spec."""
    try:
        spec = resolve_spec(*parse_model_arg(entry))
    except ModelLoadError:
        spec = None
    return explain(spec, message, hub_problem)


def _missing_words(title: str, spec: ModelSpec, reason: Unavailable) -> str:
    if reason.kind == "folder":
        return (f"The {title} model folder {reason.source} is not on this machine. Copy the model "
                f"there, or point MEDCAP_MODELS (or medcap.toml) at the folder where it is.")
    offline = "HF_HUB_OFFLINE" in reason.problem or "offline" in reason.problem
    where = ("the app is set to work offline" if offline
             else "there is no internet connection to the Hugging Face hub here")
    return (f"The {title} model is not downloaded and {where}. To use it, copy a saved copy of "
            f"{reason.source} to this machine and set MEDCAP_MODELS={spec.name}=/path/to/that/folder, "
            f"or copy the Hugging Face cache (~/.cache/huggingface) here and set HF_HUB_OFFLINE=1.")


# -- memory ------------------------------------------------------------------------------------

QUANTIZATION_WORDS = {"int8": "int8 weights", "8bit": "8-bit weights (bitsandbytes)",
                      "4bit": "4-bit weights (bitsandbytes)"}


def memory_words(spec: ModelSpec, fit: MemoryFit) -> str:
    """Why a model is not loaded here, with the memory it needs and the option that would fit."""
    title = model_title(spec)
    where = "this GPU" if fit.device == "cuda" else "this machine"
    text = (f"{title} is not loaded: it needs about {_gib(fit.needed)} of memory in "
            f"{QUANTIZATION_WORDS.get(fit.precision, fit.precision)} and {where} has "
            f"{_gib(fit.available or 0)} free.")
    if fit.smaller:
        option, needed = fit.smaller
        return (f"{text} With {QUANTIZATION_WORDS[option]} it needs about {_gib(needed)} and "
                f"fits: set MEDCAP_QUANTIZATION={option} (or --quantization {option}).")
    gpu_needed = estimate_memory(fit.parameters, "4bit", None, "cuda").bytes_needed
    return (f"{text} Run it on a GPU with at least {_gib(gpu_needed)} free and 4-bit weights "
            f"(MEDCAP_QUANTIZATION=4bit), or choose a smaller model.")


def _gib(size: int) -> str:
    return f"{size / 1024**3:.1f} GiB"
