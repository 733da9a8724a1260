"""``History``: what ``fit`` recorded, one dict per optimizer step.

It travels inside the checkpoint as plain lists and dicts (:meth:`History.state_dict`), so a
resumed run continues the same history. Plot one with ``course_utils.viz.plot_history``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

__all__ = ["History"]


@dataclass
class History:
    """What ``fit`` recorded: one dict per optimizer step.

    Each record is ``{"step": int (1-based), "loss": float, "components": {name: float},
    "lr": float (learning rate of the first parameter group used by that step)}`` plus
    ``"val": {metric: float}`` on steps where ``val_fn`` ran. ``seconds`` is the training
    time summed over all sessions; ``resumed_from`` the step this call started from
    (``None`` for a fresh start).
    """

    records: list[dict] = field(default_factory=list)
    steps: int = 0
    seconds: float = 0.0
    resumed_from: int | None = None
    checkpoint: str | None = None

    @property
    def step(self) -> int:
        """The number of optimizer steps done so far."""
        return self.records[-1]["step"] if self.records else 0

    @property
    def finished(self) -> bool:
        """Whether all ``steps`` steps are done."""
        return self.steps > 0 and self.step >= self.steps

    @property
    def losses(self) -> list[float]:
        """The loss of every step, in order."""
        return [record["loss"] for record in self.records]

    @property
    def val(self) -> list[dict]:
        """``[{"step": s, metric: value, ...}]`` for every step where validation ran."""
        return [
            {"step": record["step"], **record["val"]}
            for record in self.records
            if record.get("val")
        ]

    def state_dict(self) -> dict:
        """Plain lists, dicts and numbers (safe for ``torch.load(weights_only=True)``)."""
        return {"records": self.records, "steps": self.steps, "seconds": self.seconds}

    @classmethod
    def from_state_dict(cls, state: Mapping, **extra) -> History:
        """The History :meth:`state_dict` saved; ``extra``: ``resumed_from``, ``checkpoint``."""
        return cls(
            records=list(state["records"]),
            steps=int(state["steps"]),
            seconds=float(state["seconds"]),
            **extra,
        )

    def flat_records(self) -> list[dict]:
        """One flat dict per step: ``step``, ``loss``, ``lr``, each loss component, and the
        validation metrics prefixed ``val_`` (unless already so named), e.g.
        ``{"step": 50, "loss": 0.8, "lr": 0.01, "loss_classifier": 0.3, "val_AP": 0.41}``."""
        flat = []
        for record in self.records:
            row = {
                "step": record["step"],
                "loss": record["loss"],
                "lr": record["lr"],
                **record["components"],
            }
            row.update(
                {
                    key if key.startswith("val") else f"val_{key}": value
                    for key, value in (record.get("val") or {}).items()
                }
            )
            flat.append(row)
        return flat

    def __repr__(self) -> str:
        last_val = self.val[-1] if self.val else {}
        shown = ", ".join(f"{key} {value:.3g}" for key, value in list(last_val.items())[1:4])
        loss = f", loss {self.losses[-1]:.4g}" if self.records else ""
        shown = f", {shown}" if shown else ""
        resumed = f", resumed from {self.resumed_from}" if self.resumed_from else ""
        return f"History(step {self.step}/{self.steps}{loss}{shown}, {self.seconds:.1f} s{resumed})"
