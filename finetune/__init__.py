"""Fine-tuning scripts whose outputs `medcap` loads by path: BLIP (full), BLIP-2 and Qwen2-VL (LoRA).

Run them as `python finetune/blip.py ...`, `python -m finetune.blip ...` or, on several GPUs,
`accelerate launch finetune/blip.py ...`. The shared pieces live in `finetune.common`.
"""
