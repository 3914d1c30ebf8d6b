"""RL with verifiable rewards: GRPO over rollouts from vLLM (or transformers) actors."""
