"""Fine-tuning scripts whose outputs `medcap` loads by path: BLIP (full), BLIP-2 and Qwen2-VL (LoRA).

Run them from the repository folder as modules: `python -m finetune.blip ...` or, on several GPUs,
`accelerate launch -m finetune.blip ...` (with `pip install .`, medcap itself is importable from
anywhere; these scripts are part of the checkout, not of the installed package). The shared pieces
live in `finetune.common`.
"""
