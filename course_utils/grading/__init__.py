"""The assignments: the check runner and one module of checks per topic (``checks``).

``runner`` runs a student's function on check cases, ``compare`` compares and shows the answers,
``assignments`` declares checks (each names its reference once) and falls back to the reference
for a stuck student. A check compares a student's function with a reference from torchvision, the
course's own modules or autograd. May import every layer below it; only ``instructor`` may import
it.
"""
