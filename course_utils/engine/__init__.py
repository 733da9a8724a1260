"""Training: the one loop every notebook trains with, its losses, History and checkpoints.

May import ``core`` and ``data``; never ``metrics`` or ``viz`` (same layer, kept independent):
plot a History with ``course_utils.viz.plot_history``.
"""
