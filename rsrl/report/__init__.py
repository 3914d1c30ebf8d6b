"""The report: training, RL and eval results of one or more runs as PNGs and one HTML page."""
