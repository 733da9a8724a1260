"""Progress bars: tqdm's, drawn as a widget in a notebook and as text anywhere else.

A bar made with ``leave=False`` vanishes when its loop ends. In a notebook, tqdm hides the bar's
widget and closes its model, but the cell's output still names that model: reopen the saved
notebook while the kernel runs and JupyterLab shows "Error displaying widget: model not found"
where the bar was. :func:`progress_bar` gives such a bar its own display and, when the bar closes,
replaces that display by an empty text, so nothing that names a closed widget is left behind.

A bar that closes before reaching its total (an error, Ctrl+C, ``fit(..., stop_after=...)``) keeps
tqdm's red "danger" style and stays, whatever ``leave`` says: it shows where the loop stopped.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable

__all__ = ["progress_bar"]


def progress_bar(iterable: Iterable | None = None, **tqdm_kwargs):
    """``tqdm.auto.tqdm(iterable, **tqdm_kwargs)``; in a notebook, a bar with ``leave=False``
    also clears its output when it closes (see the module's docstring)."""
    from tqdm.auto import tqdm

    if tqdm_kwargs.get("leave", True) or not _in_notebook(tqdm):
        return tqdm(iterable, **tqdm_kwargs)
    return _self_clearing_notebook_bar()(iterable, **tqdm_kwargs)


def _in_notebook(auto_tqdm: type) -> bool:
    """Whether tqdm.auto chose the notebook (widget) bar: a Jupyter kernel with ipywidgets."""
    from tqdm.notebook import tqdm as notebook_tqdm

    return issubclass(auto_tqdm, notebook_tqdm)


@functools.cache
def _self_clearing_notebook_bar() -> type:
    """A tqdm.notebook bar shown through a display handle that it clears when it closes hidden."""
    from IPython.display import display
    from tqdm.notebook import tqdm as notebook_tqdm

    class SelfClearingNotebookBar(notebook_tqdm):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, display=False, **kwargs)
            self._handle = None
            if not self.disable:
                self._handle = display(self.container, display_id=True)

        def close(self):
            stopped_early = bool(self.total) and self.n < self.total
            if self._handle is not None and not self.leave and not stopped_early:
                # First the output, then the widget: the page never holds a view of a closed one.
                self._handle.update({"text/plain": ""}, raw=True)
                self._handle = None
            super().close()

    return SelfClearingNotebookBar
