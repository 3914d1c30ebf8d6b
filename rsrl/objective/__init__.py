"""The reward-shaped pre-training objective (arXiv 2512.22955), its kernels and diagnostics.

`loss` holds the entry points and needs torch (Triton is imported on the first Triton
call); `config` and `stat_names` are plain Python, so a spec is checked without torch.
"""
