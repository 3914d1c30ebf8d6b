"""`rsrl sweep`: Ray Tune over a spec's `sweep.space`, arms compared with a baseline.

`config` is the spec's `sweep:` section (plain Python); `run` drives Tune and aggregates
the trials; `progress` is what the console shows while it runs.
"""
