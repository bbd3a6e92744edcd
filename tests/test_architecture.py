"""The layers hold: the app reaches the engine through its public API only, the engine knows
nothing of Streamlit, and no module grows past a size a newcomer can read."""
from __future__ import annotations

import ast
from pathlib import Path

import distill_core

ROOT = Path(__file__).resolve().parent.parent
APP_FILES = [ROOT / "app.py", *sorted((ROOT / "studio").rglob("*.py")), *sorted((ROOT / "pages").rglob("*.py"))]


def imports(path: Path) -> list[tuple[str, list[str], int]]:
    """(module, names, line) of every import statement in a file, nested ones too."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.append((node.module, [a.name for a in node.names], node.lineno))
        elif isinstance(node, ast.Import):
            found.extend((a.name, [], node.lineno) for a in node.names)
    return found


def test_the_app_imports_only_the_public_api():
    exported = set(distill_core.__all__)
    wrong = []
    for path in APP_FILES:
        for module, names, line in imports(path):
            where = f"{path.relative_to(ROOT)}:{line}"
            if module.startswith("distill_core."):
                wrong.append(f"{where} imports {module}")
            elif module == "distill_core":
                wrong.extend(f"{where} imports {n}, which distill_core does not export" for n in names
                             if n not in exported)
    assert not wrong, "\n".join(wrong)


def test_the_public_api_exports_what_it_lists():
    assert [n for n in distill_core.__all__ if not hasattr(distill_core, n)] == []
    assert len(set(distill_core.__all__)) == len(distill_core.__all__)


def test_the_boundary_check_would_catch_a_reach_past_the_api(tmp_path):
    page = tmp_path / "page.py"
    page.write_text("def f():\n    from distill_core.runs.store import RunStore\n")
    assert [m for m, _, _ in imports(page)] == ["distill_core.runs.store"]


def test_the_engine_knows_nothing_of_the_app():
    for path in sorted((ROOT / "distill_core").rglob("*.py")):
        for module, _, line in imports(path):
            assert module.split(".")[0] not in ("streamlit", "studio", "pages"), f"{path}:{line} imports {module}"


def test_the_app_names_a_runs_status_with_the_engines_words():
    """A status written out as a literal ("done") in the app drifts from distill_core.vocab unseen."""
    from distill_core import STATUSES

    literal = [f"{p.relative_to(ROOT)}:{node.lineno} {node.value!r}" for p in APP_FILES
               for node in ast.walk(ast.parse(p.read_text())) if isinstance(node, ast.Constant) and node.value in STATUSES]
    assert not literal, literal


def test_every_status_has_a_badge():
    from distill_core import STATUSES
    from studio.style import STATUS_BADGE

    assert set(STATUS_BADGE) == set(STATUSES)


def test_no_module_is_too_long_to_read():
    long = {str(p.relative_to(ROOT)): n for p in [*ROOT.joinpath("distill_core").rglob("*.py"), *APP_FILES]
            if (n := len(p.read_text().splitlines())) > 500}
    assert not long, long
