"""A custom verifier as a plugin, used by name from a spec.

    python examples/custom_verifier.py

Put the function in a module or a .py file, decorate it with `register_verifier`, and list
that module (or file) under `plugins:` in the spec; then `rl.verifier.name` or a suite's
`verifier.name` can use it. (A package can instead publish it under the `rsrl.verifiers`
entry-point group, as plugins/rsrl_verifier_example does.)
"""

from pathlib import Path

from rsrl.spec import load_spec
from rsrl.verifiers import VerifyResult, load_verifier, register_verifier


@register_verifier("ends-with-answer")
def ends_with_answer(prompt: str, completion: str, answer: str, **fields) -> VerifyResult:
    """Full credit when the completion's last word is the answer, half when it appears."""
    words = completion.split()
    if words and words[-1].strip(".") == answer:
        return VerifyResult(1.0)
    return VerifyResult(0.5 if answer in completion else 0.0, "answer not at the end")


if __name__ == "__main__":
    repo = Path(__file__).resolve().parents[1]
    spec = load_spec(
        repo / "specs" / "quickstart.yaml",
        [f"plugins=[{Path(__file__).resolve()}]", "rl.verifier.name=ends-with-answer"],
    )
    verify = load_verifier(spec.rl.verifier.name, spec.plugins)
    print(spec.rl.verifier.name, "->", verify("What is 2+3?", "The sum is 5.", "5"))
    print(spec.rl.verifier.name, "->", verify("What is 2+3?", "5 it is not", "5"))
