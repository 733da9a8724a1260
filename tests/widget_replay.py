"""Build every explorer of the course's notebooks with whatever ipywidgets is importable.

    python tests/widget_replay.py report.json notebooks/*.ipynb      # writes one JSON report

``tests/test_ipywidgets7.py`` runs this under ipywidgets 7.7.1 (what Colab ships), so that a
widget API that exists only in 8.x fails in the tests and not in class. For each notebook, every
``interact(...)`` call is read from the code (no cell is run) and rebuilt:

* each widget it is given (``IntSlider(value=0, min=0, max=96)``) must be a class of this
  ipywidgets, every keyword must be one of that class's traits, and the widget must build with
  the keyword values that can be worked out without running the notebook (literals, and names
  the notebook sets to a literal); the other values are left to the widget's defaults, and
  listed under ``defaulted``;
* each abbreviation (``k=[25, 50]``, ``step=(0, 10)``) goes through ipywidgets' own
  ``interactive.widget_from_abbrev``;
* the explorer is built with ``interactive`` around a recording function; then every control
  is given another valid value and the function must be called again with it (the callback's
  link, kernel side).
"""

from __future__ import annotations

import ast
import builtins
import json
import sys
from pathlib import Path

SAFE_BUILTINS = {
    name: getattr(builtins, name)
    for name in ("len", "list", "tuple", "sorted", "range", "int", "float", "min", "max", "round")
}


def code_of(path: Path) -> str:
    """The notebook's code cells as one module (IPython's ``%`` and ``!`` lines left out)."""
    notebook = json.loads(path.read_text())
    cells = []
    for cell in notebook["cells"]:
        if cell["cell_type"] != "code":
            continue
        source = "".join(cell["source"])
        lines = [line for line in source.splitlines() if not line.lstrip().startswith(("%", "!"))]
        cells.append("\n".join(lines))
    return "\n\n".join(cells)


def widget_names(tree: ast.Module) -> set[str]:
    """The names the notebook imports from ipywidgets."""
    return {
        alias.asname or alias.name
        for node in ast.walk(tree)
        if isinstance(node, ast.ImportFrom) and node.module == "ipywidgets"
        for alias in node.names
    }


def literal_constants(tree: ast.Module) -> dict:
    """``NAME = <literal>`` assignments at the notebook's top level (later ones win)."""
    constants = {}
    for node in tree.body:
        if not isinstance(node, ast.Assign) or len(node.targets) != 1:
            continue
        target = node.targets[0]
        try:
            value = ast.literal_eval(node.value)
        except (ValueError, SyntaxError, TypeError):
            continue
        pairs = [(target, value)]
        if isinstance(target, ast.Tuple) and isinstance(value, tuple):
            pairs = list(zip(target.elts, value)) if len(target.elts) == len(value) else []
        for name, item in pairs:
            # An empty container is filled as the notebook runs: its value is unknown here.
            if isinstance(name, ast.Name) and not (
                isinstance(item, (list, dict, set)) and not item
            ):
                constants[name.id] = item
    return constants


def evaluate(expression: ast.expr, constants: dict):
    """The expression's value from literals, the constants and a few builtins; KeyError if it
    needs anything else."""
    try:
        return eval(  # noqa: S307 - restricted namespace, expressions from the course's notebooks
            compile(ast.Expression(expression), "<notebook>", "eval"),
            {"__builtins__": SAFE_BUILTINS},
            dict(constants),
        )
    except Exception as error:
        raise KeyError(ast.unparse(expression)) from error


def build_widget(widgets, call: ast.Call, constants: dict, report: dict):
    """The widget of ``Class(keyword=value, ...)``; problems and defaulted keywords go to
    ``report``. None when the class does not exist."""
    name = call.func.id
    cls = getattr(widgets, name, None)
    if cls is None:
        report["problems"].append(f"ipywidgets {widgets.__version__} has no {name}")
        return None
    traits = set(cls.class_trait_names())
    kwargs = {}
    for keyword in call.keywords:
        if keyword.arg not in traits:
            report["problems"].append(
                f"{name}({keyword.arg}=...): ipywidgets {widgets.__version__}'s {name} has no "
                f"trait {keyword.arg!r}"
            )
            continue
        try:
            kwargs[keyword.arg] = evaluate(keyword.value, constants)
        except KeyError as unknown:
            report["defaulted"].append(f"{name}.{keyword.arg} = {unknown.args[0]}")
    if "options" not in kwargs and any(k.arg == "options" for k in call.keywords):
        kwargs.pop("value", None)  # a value is only valid among its options
    try:
        return cls(**kwargs)
    except Exception as error:
        report["problems"].append(f"{name}(**{kwargs}) failed: {type(error).__name__}: {error}")
        return None


def other_value(widget):
    """A valid value different from the widget's own (None if it has no other)."""
    value = widget.value
    if isinstance(value, bool):
        return not value
    options = getattr(widget, "options", None)
    if options:
        labels = [option[1] if isinstance(option, tuple) else option for option in options]
        return next((option for option in labels if option != value), None)
    if isinstance(value, tuple):  # a range slider: move its lower end
        low = widget.min if value[0] != widget.min else min(value[0] + widget.step, value[1])
        return (low, value[1]) if low != value[0] else None
    if hasattr(widget, "min") and hasattr(widget, "max"):
        return widget.min if value != widget.min else widget.max
    return None


def placeholder_abbreviation(expression: ast.expr):
    """A stand-in of the same kind for an abbreviation that needs the running notebook: a list
    (a dropdown) for a list display or a ``list(...)``/``sorted(...)`` call; None otherwise."""
    is_list_call = isinstance(expression, ast.Call) and isinstance(expression.func, ast.Name)
    if isinstance(expression, (ast.List, ast.ListComp)) or (
        is_list_call and expression.func.id in ("list", "sorted")
    ):
        return ["first", "second"]
    return None


def widget_assignments(tree: ast.Module, names: set[str]) -> dict[str, ast.Call]:
    """``name = WidgetClass(...)`` at the notebook's top level: the widget calls by name."""
    return {
        node.targets[0].id: node.value
        for node in tree.body
        if isinstance(node, ast.Assign)
        and len(node.targets) == 1
        and isinstance(node.targets[0], ast.Name)
        and isinstance(node.value, ast.Call)
        and isinstance(node.value.func, ast.Name)
        and node.value.func.id in names
    }


def replay_interact(widgets, call: ast.Call, notebook: dict, report: dict):
    """Rebuild one ``interact(f, **controls)`` call and check every control's callback link.

    ``notebook``: ``names`` imported from ipywidgets, literal ``constants``, widgets ``assigned``
    to names (``slider = IntSlider(...)``)."""
    names, constants, assigned = notebook["names"], notebook["constants"], notebook["assigned"]
    controls = {}
    for keyword in call.keywords:
        value = keyword.value
        if isinstance(value, ast.Name) and value.id in assigned:
            value = assigned[value.id]
        if (
            isinstance(value, ast.Call)
            and isinstance(value.func, ast.Name)
            and value.func.id in names
        ):
            widget = build_widget(widgets, value, constants, report)
        else:
            try:
                abbreviation = evaluate(value, constants)
            except KeyError as unknown:
                abbreviation = placeholder_abbreviation(value)
                if abbreviation is None:
                    report["problems"].append(f"interact({keyword.arg}={unknown.args[0]}): unknown")
                    continue
                report["defaulted"].append(f"interact({keyword.arg}={unknown.args[0]})")
            widget = widgets.interactive.widget_from_abbrev(abbreviation)
            if widget is None:
                report["problems"].append(f"interact({keyword.arg}=...): not a widget abbreviation")
        if widget is not None:
            controls[keyword.arg] = widget
    calls = []

    def record(**values):
        calls.append(values)

    explorer = widgets.interactive(record, **controls)
    explorer.update()
    report["controls"] += len(controls)
    for name, widget in controls.items():
        new = other_value(widget)
        if new is None:
            continue
        widget.value = new
        if not calls or calls[-1].get(name) != widget.value:
            report["problems"].append(
                f"interact: setting {name} to {new!r} did not call the explorer with it"
            )


def replay_notebook(widgets, path: Path) -> dict:
    """The report of one notebook: explorers and controls built, problems, defaulted values."""
    tree = ast.parse(code_of(path))
    names = widget_names(tree)
    notebook = {
        "names": names,
        "constants": literal_constants(tree),
        "assigned": widget_assignments(tree, names),
    }
    report = {"explorers": 0, "controls": 0, "problems": [], "defaulted": []}
    for node in ast.walk(tree):
        if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Name)):
            continue
        if node.func.id in ("interact", "interactive") and node.func.id in names:
            report["explorers"] += 1
            replay_interact(widgets, node, notebook, report)
    return report


def main(paths: list[str]) -> dict:
    import ipywidgets

    return {
        "ipywidgets": ipywidgets.__version__,
        "notebooks": {Path(p).name: replay_notebook(ipywidgets, Path(p)) for p in paths},
    }


if __name__ == "__main__":
    # The report goes to a file: outside a kernel, ipywidgets writes terminal codes to stdout.
    out, *notebooks = sys.argv[1:]
    Path(out).write_text(json.dumps(main(notebooks), indent=1))
