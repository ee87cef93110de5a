"""Supervised finetuning: SFT data, the sharded train step, training checkpoints."""
