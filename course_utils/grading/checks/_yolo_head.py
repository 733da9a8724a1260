"""How ``check_YOLOHead`` compares a student's head with the reference (private: not a topic
module): its layers, then both with the same weights on the same features in eval mode, then the
student's in train mode (dropout on the hidden layer, or none when dropout = 0)."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from course_utils.grading.compare import describe, not_a_tensor_problem
from course_utils.grading.runner import Case

__all__ = ["compare_head"]

_SEED = 606


def _linear_problem(got: nn.Module, name: str, want: nn.Linear) -> str | None:
    layer = getattr(got, name, None)
    if not isinstance(layer, nn.Linear):
        found = "nothing" if layer is None else f"a {type(layer).__name__}"
        return (
            f"self.{name} must be an nn.Linear, found {found}: the layers are the attributes "
            "fc1, dropout and fc2."
        )
    for setting in ("in_features", "out_features"):
        if getattr(layer, setting) != getattr(want, setting):
            return (
                f"self.{name} has {setting} {getattr(layer, setting)}, expected "
                f"{getattr(want, setting)}: {name} is nn.Linear({want.in_features}, "
                f"{want.out_features}) (fc1: in_features -> hidden; fc2: hidden -> S * S * "
                "(5B + C))."
            )
    if layer.bias is None:
        return f"self.{name} has no bias: keep nn.Linear's default bias=True."
    return None


def _structure_problem(got: Any, expected: nn.Module, p: float) -> str | None:
    """Layers, dropout, train mode, no other parameters, a forward method."""
    if not isinstance(got, nn.Module):
        return (
            f"YOLOHead(...) gave {describe(got)}, expected an nn.Module (class "
            "YOLOHead(nn.Module))."
        )
    for name in ("fc1", "fc2"):
        problem = _linear_problem(got, name, getattr(expected, name))
        if problem:
            return problem
    rates = [m.p for m in got.modules() if isinstance(m, nn.Dropout)]
    if p > 0 and not rates:
        return (
            f"the head has no nn.Dropout: add self.dropout = nn.Dropout(dropout) (p = {p} here) "
            "and apply it between the activation and fc2."
        )
    if any(rate != p for rate in rates):
        return f"nn.Dropout has p = {rates}, expected {p}: pass the dropout argument."
    if not all(module.training for module in got.modules()):
        return "the module is in eval mode after YOLOHead(...): do not call .eval() in __init__."
    own = {id(q) for name in ("fc1", "fc2") for q in getattr(got, name).parameters()}
    extra = [n for n, q in got.named_parameters() if id(q) not in own]
    extra += [n for n, _ in got.named_buffers()]
    if extra:
        return (
            f"the head has parameters or buffers besides fc1 and fc2: {', '.join(extra)}. The "
            "head is flatten -> fc1 -> leaky ReLU -> dropout -> fc2, nothing else (no BatchNorm)."
        )
    if type(got).forward is nn.Module.forward:
        return "the class has no forward(self, features) method."
    return None


def _forward(head: nn.Module, features: torch.Tensor, train: bool) -> Any:
    """``head(features)`` in train or eval mode; a NotImplementedError is the release stub."""
    head.train(train)
    try:
        with torch.no_grad():
            return head(features.clone())
    except NotImplementedError:
        raise NotImplementedError(
            "YOLOHead is not written yet: replace `raise NotImplementedError()` in its cell (in "
            "__init__ and forward) with your code, run that cell, then run this check again."
        ) from None


def _eval_problem(got: Any, head: nn.Module, features: torch.Tensor) -> str | None:
    """The eval-mode output, compared with the reference formula and its usual variants."""
    size = tuple(features.shape)
    fc1, fc2 = head.fc1, head.fc2
    with torch.no_grad():
        pre = fc1(features.flatten(1))
        shape = (len(features), head.grid_size, head.grid_size, head.per_cell)
        variants = {
            None: fc2(nn.functional.leaky_relu(pre, 0.1)).view(shape),
            "the activation is a ReLU: use nn.functional.leaky_relu(x, 0.1)": fc2(pre.relu()),
            "the leaky ReLU's slope is 0.01 (the default): pass negative_slope=0.1": fc2(
                nn.functional.leaky_relu(pre)
            ),
            "there is no activation between fc1 and fc2: add a leaky ReLU (slope 0.1)": fc2(pre),
        }
    want = variants.pop(None)
    problem = not_a_tensor_problem(got)
    if problem:
        return problem
    if got.shape != want.shape:
        flipped = (shape[0], shape[3], shape[1], shape[2])
        if tuple(got.shape) == flipped:
            return (
                f"the output has shape {tuple(got.shape)}, expected {shape}: (N, S, S, 5B + C), "
                "the numbers of a cell last (.view(N, S, S, 5B + C), not channels first)."
            )
        return f"on features {size} the output has shape {tuple(got.shape)}, expected {shape}."
    if torch.allclose(got, want, rtol=1e-4, atol=1e-5):
        return None
    if torch.allclose(got, torch.sigmoid(want), atol=1e-5):
        return "the output looks like sigmoid(fc2(...)): YOLO v1's last layer is linear."
    for text, variant in variants.items():
        if torch.allclose(got.flatten(1), variant, rtol=1e-4, atol=1e-5):
            return f"eval-mode outputs differ: {text}."
    return (
        f"eval-mode outputs differ from the reference's with the same weights (largest "
        f"difference {float((got - want).abs().max()):.4g})."
    )


def _train_problem(head: nn.Module, features: torch.Tensor, eval_output, p: float) -> str | None:
    """In train mode: random when p > 0, and fc2 of a dropped-out hidden layer; else eval's."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(_SEED + 41)
        first, second = _forward(head, features, True), _forward(head, features, True)
    if p == 0:
        if not torch.allclose(first, eval_output, rtol=1e-4, atol=1e-5):
            return "with dropout = 0 the train-mode output differs from the eval-mode output."
        return None
    if torch.allclose(first, eval_output) or torch.allclose(first, second):
        return (
            f"in train mode (dropout {p}) the output is not random: apply self.dropout in "
            "forward (nn.Dropout only acts in train mode)."
        )
    weight, bias = head.fc2.weight.double(), head.fc2.bias.double()
    wanted = (first.flatten(1).double() - bias).T
    hidden = torch.linalg.lstsq(weight, wanted).solution  # (hidden, N)
    if not torch.allclose(weight @ hidden, wanted, atol=1e-4):
        return (
            "in train mode the output is not fc2 of a (dropped-out) hidden layer: the dropout "
            "is applied after fc2. Apply it to the hidden layer, before fc2."
        )
    with torch.no_grad():
        kept = nn.functional.leaky_relu(head.fc1(features.flatten(1)), 0.1).double().T / (1 - p)
    ok = torch.isclose(hidden, kept, rtol=1e-3, atol=1e-4) | (hidden.abs() < 1e-4)
    if not bool(ok.all()):
        return (
            "in train mode fc2's input is not the leaky ReLU's output with some values zeroed "
            "(and the others scaled by 1 / (1 - p)): the dropout acts on the hidden layer, after "
            "the activation, not on the input features."
        )
    return None


def compare_head(got: Any, expected: nn.Module, case: Case) -> str | None:
    """Layers, then both heads with the same weights on random features (N = 2, a (D, 2, 3)
    map) in eval mode, then the student's in train mode."""
    p = case.args[5]
    problem = _structure_problem(got, expected, p)
    if problem:
        return problem
    g = torch.Generator().manual_seed(_SEED + 40)
    with torch.no_grad():
        for name in ("fc1", "fc2"):
            for attribute in ("weight", "bias"):
                values = getattr(getattr(expected, name), attribute)
                values.copy_(torch.randn(values.shape, generator=g) / values.shape[-1] ** 0.5)
                getattr(getattr(got, name), attribute).copy_(values)
    features = torch.randn(2, case.args[0] // 6, 2, 3, generator=g)
    try:
        output = _forward(got, features, False)
    except NotImplementedError:
        raise
    except Exception as error:
        return (
            f"forward raised {type(error).__name__} on features {tuple(features.shape)}: "
            f"{error}. Flatten the (N, D, h, w) features first (features.flatten(1))."
        )
    problem = _eval_problem(output, expected, features)
    return problem or _train_problem(got, features, output, p)
