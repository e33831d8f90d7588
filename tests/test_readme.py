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


def test_readme_saved_bytes_table_is_generated():
    # README's "Where the memory saving applies" table is benchmarks/saved_bytes.py's
    # output (exact byte counts, so it regenerates bit for bit), stored beside it.
    import importlib.util

    spec = importlib.util.spec_from_file_location("saved_bytes",
                                                  ROOT / "benchmarks" / "saved_bytes.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    table = mod.table()
    assert table in (ROOT / "README.md").read_text()
    assert table == (ROOT / "benchmarks" / "results" / "memory" / "saved_bytes.md").read_text()
