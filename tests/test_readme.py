"""The README's example prints what the README says it prints, and the Quickstart
test command is what .ci/run runs."""

import contextlib
import io
import pathlib
import re

ROOT = pathlib.Path(__file__).resolve().parents[1]


def _example():
    text = (ROOT / "README.md").read_text()
    section = text.split("## Example", 1)[1]
    code, output = re.findall(r"```(?:python)?\n(.*?)```", section, re.S)[:2]
    return code, output


def test_readme_example_output():
    code, expected = _example()
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(compile(code, "README.md", "exec"), {})
    assert out.getvalue() == expected


def test_ci_runs_the_quickstart_test_command():
    text = (ROOT / "README.md").read_text()
    block = re.search(r"## Quickstart.*?```bash\n(.*?)```", text, re.S).group(1)
    commands = [l for l in block.splitlines() if l.strip() and not l.startswith("#")]
    assert len(commands) == 2
    assert commands[0].endswith("python -m selu_ext.bench --quick")
    assert commands[1].endswith("python -m pytest")
    assert "README.md" in (ROOT / ".ci" / "run").read_text()
