"""Pre- and mid-training: Ray Train workers wrapping a Hugging Face model in DeepSpeed."""
