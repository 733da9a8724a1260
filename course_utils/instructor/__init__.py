"""Instructors' tools: ``release`` (the student version of the notebooks) and ``report`` (the benchmark).

Nothing here is imported by a student's kernel or by any other part of ``course_utils``; these
modules may import jupyter, nbclient and nbgrader.
"""
