"""How selu_ext's modules import one another (issue 23): no cycle among them, and
selu_ext.diagnose loaded only when it is used, its names still reachable from the
package as before."""

import ast
import os

import selu_ext
from test_build import run_python

PACKAGE = os.path.dirname(os.path.abspath(selu_ext.__file__))


def _module_level_imports(path):
    """The selu_ext modules a file imports when it is loaded: its top-level import
    statements (those inside functions run only when called)."""
    tree = ast.parse(open(path).read(), path)
    found = set()

    def visit(body):
        for node in body:
            if isinstance(node, ast.ImportFrom) and node.level == 1:
                if node.module:
                    found.add(node.module.split(".")[0])
                else:
                    found.update(a.name for a in node.names)
            elif isinstance(node, ast.Import):
                found.update(a.name.split(".")[1] for a in node.names
                             if a.name.startswith("selu_ext."))
            elif isinstance(node, (ast.If, ast.Try)):
                visit(node.body + node.orelse + getattr(node, "finalbody", [])
                      + [s for h in getattr(node, "handlers", []) for s in h.body])

    visit(tree.body)
    return found


def _import_graph():
    modules = {f[:-3] for f in os.listdir(PACKAGE) if f.endswith(".py")}
    return {m: _module_level_imports(os.path.join(PACKAGE, m + ".py")) & modules
            for m in modules}


def _cycle(graph):
    """A list of modules that import one another in a circle, or None."""
    state = {}

    def walk(m, path):
        state[m] = "open"
        for n in sorted(graph[m]):
            if state.get(n) == "open":
                return path[path.index(n):] + [n]
            if n not in state:
                found = walk(n, path + [n])
                if found:
                    return found
        state[m] = "done"
        return None

    for m in sorted(graph):
        if m not in state:
            found = walk(m, [m])
            if found:
                return found
    return None


def test_no_import_cycle():
    graph = _import_graph()
    # diagnose builds on nn (its layer types); nn.convert loads diagnose only when
    # called, for its warnings: an import of diagnose at nn's top closes the circle.
    assert "nn" in graph["diagnose"] and "functional" in graph["nn"]
    assert _cycle(graph) is None, " -> ".join(_cycle(graph))


def test_cycle_finder_finds_one():
    assert _cycle({"nn": {"diagnose"}, "diagnose": {"init", "nn"}, "init": set()}) == [
        "diagnose", "nn", "diagnose"]


def test_import_does_not_load_diagnose():
    run_python("""
        import sys
        import selu_ext
        assert "selu_ext.diagnose" not in sys.modules
        model = selu_ext.nn.SelfNormalizingMLP(4, 8, 2, depth=2)
        selu_ext.nn.Sequential(selu_ext.nn.SELU())(selu_ext.selu(__import__("torch").ones(3)))
        assert "selu_ext.diagnose" not in sys.modules
    """)


def test_diagnose_names_load_on_use():
    run_python("""
        import sys, warnings
        import torch
        import selu_ext
        report = selu_ext.diagnose(selu_ext.nn.SelfNormalizingMLP(4, 8, 2, depth=2),
                                   torch.randn(64, 4))
        assert report.ok and "selu_ext.diagnose" in sys.modules
        from selu_ext import SelfNormalizationWarning, diagnose
        assert diagnose is selu_ext.diagnose and callable(diagnose)
        assert issubclass(SelfNormalizationWarning, Warning)
        assert {"diagnose", "SelfNormalizationWarning"} <= set(dir(selu_ext))
        assert {"diagnose", "SelfNormalizationWarning"} <= set(selu_ext.__all__)
    """)


def test_diagnose_stays_the_function_when_the_module_loads_first():
    # The import system binds a submodule as its package's attribute when it loads
    # it; selu_ext.diagnose must stay the function, whoever loads the module first.
    run_python("""
        import sys
        import torch
        import selu_ext
        from selu_ext.diagnose import SelfNormalizationWarning
        assert callable(selu_ext.diagnose)
        assert selu_ext.SelfNormalizationWarning is SelfNormalizationWarning
    """)
    run_python("""
        import sys
        import torch
        import selu_ext
        bad = torch.nn.Sequential(torch.nn.Linear(64, 64), torch.nn.SELU(), torch.nn.Dropout(0.1),
                                  torch.nn.Linear(64, 64))
        with __import__("warnings").catch_warnings(record=True) as caught:
            __import__("warnings").simplefilter("always")
            selu_ext.nn.convert(bad)  # loads selu_ext.diagnose for its warnings
        assert "selu_ext.diagnose" in sys.modules
        assert [w.category.__name__ for w in caught] == ["SelfNormalizationWarning"]
        assert caught[0].category is selu_ext.SelfNormalizationWarning
        assert callable(selu_ext.diagnose)
        import selu_ext.diagnose as d
        assert d is selu_ext.diagnose
    """)


def test_library_runs_without_numpy():
    # numpy is no install requirement (setup.py): the library must not import it.
    run_python("""
        import sys
        sys.modules["numpy"] = None  # any import of numpy now fails
        import torch
        import selu_ext
        x = torch.randn(4, 3, 2)
        for fn in (selu_ext.alpha_dropout, selu_ext.feature_alpha_dropout,
                   selu_ext.selu_alpha_dropout):
            assert fn(x, 0.5, True).shape == x.shape
        selu_ext.nn.convert(torch.nn.Sequential(torch.nn.Linear(2, 2), torch.nn.SELU()))
        selu_ext.diagnose(selu_ext.nn.SelfNormalizingMLP(2, 4, 2, depth=1), x[0])
    """)
