"""What the help center's Markdown costs: rendering an article's body as HTML, and an excerpt for the list
(services/assist/rendering.py), by body size, on a cold cache (every body new) and a warm one.

Run from the repo root: `python -m bench.help_center [--rounds N]`. It prints figures; it asserts nothing
about time. A list page computes one excerpt per published article; an article page renders one body.
"""

import argparse
import time
import uuid

from services.assist import rendering

PARAGRAPH = ("## Step {n}\n\nOpen **Settings**, then *Security*: see [the guide](https://example.com/guide) "
             "and run `reset --all`.\n\n- check the address\n- check the spam folder\n\n")


def body(size: int) -> str:
    """A Markdown body of about `size` characters, unique (so no cache has seen it)."""
    text, n = uuid.uuid4().hex + "\n\n", 0
    while len(text) < size:
        n += 1
        text += PARAGRAPH.format(n=n)
    return text[:size]


def per_call_ms(function, bodies: list[str]) -> float:
    start = time.perf_counter()
    for item in bodies:
        function(item)
    return (time.perf_counter() - start) / len(bodies) * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=50)
    rounds = parser.parse_args().rounds
    columns = ("body chars", "html cold ms", "html warm ms", "excerpt cold ms", "excerpt warm ms")
    print(" ".join(f"{name:>16}" for name in columns))
    for size in (500, 2_000, 10_000, 50_000):
        bodies = [body(size) for _ in range(rounds)]
        html_cold = per_call_ms(rendering.to_html, bodies)
        html_warm = per_call_ms(rendering.to_html, bodies[-1:] * rounds)
        excerpt_cold = per_call_ms(rendering.excerpt, [body(size) for _ in range(rounds)])
        excerpt_warm = per_call_ms(rendering.excerpt, bodies[-1:] * rounds)
        print(f"{size:>16} {html_cold:>16.2f} {html_warm:>16.3f} {excerpt_cold:>16.2f} {excerpt_warm:>16.3f}")


if __name__ == "__main__":
    main()
