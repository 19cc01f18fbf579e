"""Caption quality metrics (BLEU, METEOR, ROUGE, CIDEr-D, model-based ones when available)."""
