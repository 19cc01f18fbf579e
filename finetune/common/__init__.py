"""What the three fine-tune scripts share: configuration, data, collation, training and evaluation."""
