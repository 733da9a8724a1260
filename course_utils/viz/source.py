"""Show a class's or function's code in a notebook: nothing a notebook trains is unseen."""

from __future__ import annotations

import inspect
import textwrap

__all__ = ["show_source"]


def show_source(obj) -> None:
    """Display ``obj``'s source (a class, function or method) as a highlighted Python block;
    outside a notebook, print it. TypeError when it has no Python source (a builtin)."""
    try:
        code = textwrap.dedent(inspect.getsource(obj))
    except (TypeError, OSError) as error:
        raise TypeError(
            f"show_source needs a Python class or function, got {type(obj).__name__}: {error}"
        ) from None
    try:
        from IPython import get_ipython
        from IPython.display import Markdown, display
    except ImportError:  # pragma: no cover - IPython ships with Jupyter
        print(code)
        return
    if get_ipython() is None:
        print(code)
    else:
        display(Markdown(f"```python\n{code}```"))
