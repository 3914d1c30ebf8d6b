"""An example third-party verifier: is the completion's last word a palindrome of the answer?"""


def palindrome(prompt: str, completion: str, answer: str, **fields) -> float:
    words = completion.split()
    return float(bool(words) and words[-1] == answer[::-1])
