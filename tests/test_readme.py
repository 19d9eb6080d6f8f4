"""The README's Python examples run, and print what the README says they print.

Every ```python fenced block of README.md runs in a fresh interpreter in a temporary directory. The
expected output of a ``print(...)`` is the comment that ends its line or, failing that, the comment
line right below it; remarks in parentheses and anything after ``": "`` are commentary. Each
expected token must equal the printed one: a number to the digits the README shows (0.001486 means
a value that rounds to it), anything else exactly.
"""

from __future__ import annotations

import io
import re
import subprocess
import sys
import time
import tokenize
from decimal import Decimal, InvalidOperation
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[1] / "README.md"
TIMEOUT_S = 120  # the example takes a few seconds; README's "30-second example" is the promise


def python_blocks(markdown: str) -> list[str]:
    """The bodies of the ```python fenced blocks, in order."""
    return re.findall(r"^```python[ \t]*\n(.*?)^```[ \t]*$", markdown, flags=re.S | re.M)


def expected_prints(block: str) -> list[str | None]:
    """For each ``print(`` statement at line start: its expected output comment, or None."""
    comments: dict[int, str] = {}
    for tok in tokenize.generate_tokens(io.StringIO(block).readline):
        if tok.type == tokenize.COMMENT:
            comments[tok.start[0]] = tok.string.lstrip("#").strip()
    lines = block.splitlines()
    found: list[str | None] = []
    for number, line in enumerate(lines, start=1):
        if not line.startswith("print("):
            continue
        below = lines[number] if number < len(lines) else ""
        if number in comments:
            found.append(comments[number])
        else:
            found.append(comments.get(number + 1) if below.lstrip().startswith("#") else None)
    return found


def expected_tokens(comment: str) -> list[str]:
    """The claimed output of a comment: remarks in parentheses and after ``": "`` dropped."""
    text = re.sub(r"\([^)]*\)", " ", comment)
    return text.split(": ")[0].split()


def _as_decimal(text: str) -> Decimal | None:
    try:
        value = Decimal(text)
    except InvalidOperation:
        return None
    return value if value.is_finite() else None


def token_matches(expected: str, printed: str) -> bool:
    """A number matches when it rounds to the README's digits; anything else must be equal."""
    want, got = _as_decimal(expected), _as_decimal(printed)
    if want is None or got is None:
        return expected == printed
    half_unit = Decimal(5).scaleb(want.as_tuple().exponent - 1)  # half a unit in the last shown place
    return abs(got - want) <= half_unit


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> list[tuple[str, list[str], float]]:
    """(block, printed lines, seconds) for every Python block, each run once in a fresh directory."""
    blocks = python_blocks(README.read_text(encoding="utf-8"))
    results = []
    for index, block in enumerate(blocks):
        workdir = tmp_path_factory.mktemp(f"readme_block_{index}")
        start = time.perf_counter()
        proc = subprocess.run([sys.executable, "-c", block], cwd=workdir, capture_output=True, text=True,
                              timeout=TIMEOUT_S, check=False)
        seconds = time.perf_counter() - start
        assert proc.returncode == 0, f"README block {index} failed:\n{proc.stderr[-3000:]}"
        results.append((block, proc.stdout.splitlines(), seconds))
    return results


def test_the_parsers() -> None:
    block = 'x = 1\nprint(x, "a#b")   # 1 a#b: remark\nprint(2.5)\n# 2.50 (two and a half)\nprint(3)\n'
    assert python_blocks(f"text\n```python\n{block}```\n\n```\n$ not python\n```\n") == [block]
    assert expected_prints(block) == ["1 a#b: remark", "2.50 (two and a half)", None]
    assert expected_tokens("True erm 0.001486 (the public budget) 5.9e-07 (the measured bound: private)") == [
        "True", "erm", "0.001486", "5.9e-07"]
    assert expected_tokens("12.9: erases the model") == ["12.9"]
    assert token_matches("0.001486", "0.0014860536") and not token_matches("0.001486", "0.0014866")
    assert token_matches("12.9", "12.8725") and not token_matches("12.9", "12.84")
    assert token_matches("True", "True") and not token_matches("True", "False")


def test_readme_has_a_python_example() -> None:
    blocks = python_blocks(README.read_text(encoding="utf-8"))
    assert blocks and all(any(e is not None for e in expected_prints(b)) for b in blocks)


def test_readme_examples_run_and_print_what_they_claim(runs: list[tuple[str, list[str], float]]) -> None:
    for index, (block, printed, _seconds) in enumerate(runs):
        claims = expected_prints(block)
        assert len(printed) == len(claims), (index, printed)
        for claim, line in zip(claims, printed, strict=True):
            if claim is None:
                continue
            want, got = expected_tokens(claim), line.split()
            assert len(want) == len(got), (claim, line)
            for w, g in zip(want, got, strict=True):
                assert token_matches(w, g), f"README block {index}: claims {w!r}, prints {g!r} ({line!r})"


def test_the_first_example_is_certified_within_its_public_budget(runs: list[tuple[str, list[str], float]]) -> None:
    # print(res.certified, res.reference, res.sensitivity, res.measured_bound, res.sigma, res.noise_source)
    certified, reference, budget, measured, sigma, noise = runs[0][1][0].split()
    assert (certified, reference, noise) == ("True", "erm", "secure")
    assert 0.0 <= float(measured) <= float(budget) and float(sigma) > 0.0
