"""The findings `rsrl apply` ends with and report.html opens with."""

from rsrl.report.findings import findings


def test_findings_say_each_gain_once_with_its_reading_then_held_out_text():
    same = {"mean": 0.225, "se": 0.035, "z": 6.4}
    metrics = {
        "rl_gain": {
            "count": {
                "avg@16": same,
                "mean_score": same,
                "pass@1": same,
                "pass@4": {"mean": -0.064, "se": 0.035, "z": -1.8},
            }
        },
        "heldout": {
            "pretrain": {"entropy": 2.84, "perplexity": 16.4},
            "rl": {"entropy": 2.78, "perplexity": 18.3},
        },
    }
    assert findings(metrics) == [
        "RL gain (after - before RL, paired by problem, ± standard error):",
        "  count avg@16 (= mean_score, pass@1): +0.225 ± 0.035 (gain)",
        "  count pass@4: -0.064 ± 0.035 (no detectable difference)",
        "held-out entropy / perplexity by checkpoint: pretrain 2.84 / 16.4, rl 2.78 / 18.3",
    ]
    assert findings(None) == [] and findings({}) == []
