"""The assignments: the check runner (``assignments``) and one module of checks per topic (``checks``).

A check compares a student's function with a reference from torchvision, the course's own
modules or autograd. May import every layer below it; only ``instructor`` may import it.
"""
