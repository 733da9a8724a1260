"""The set-up cell every notebook starts with, kept in one place (a test checks the notebooks).

On Colab (or any Python where ``course_utils`` is missing) the cell installs the course's
helpers from the repository with ``--no-deps``: Colab already ships torch, torchvision,
numpy, matplotlib, scikit-image, pycocotools, tqdm and ipywidgets, and nothing of those
is reinstalled, so no runtime restart is needed.
"""

REPOSITORY_URL = "https://github.com/detseg-course/detseg-course"

SETUP_CELL = (
    (
        "# Set-up: on Colab this installs the course's helpers (and nothing else); "
        "locally it does nothing.\n"
    )
    + f"""try:
    import course_utils  # noqa: F401
except ImportError:
    %pip install --quiet --no-deps "git+{REPOSITORY_URL}"
    import course_utils  # noqa: F401"""
)


def colab_badge_url(notebook: str, folder: str = "release") -> str:
    """The "Open in Colab" address of ``folder/notebook.ipynb`` on the repository's main branch."""
    path = REPOSITORY_URL.removeprefix("https://github.com/")
    return f"https://colab.research.google.com/github/{path}/blob/main/{folder}/{notebook}.ipynb"
