"""Instructors' tools: ``release`` (the student notebooks), ``report`` (the benchmark) and
``execution`` (running and measuring one notebook, for the report).

Nothing here is imported by a student's kernel or by any other part of ``course_utils``; these
modules may import jupyter, nbclient and nbgrader.
"""
