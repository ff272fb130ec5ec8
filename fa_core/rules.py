"""Learning rules: how each layer turns the error it receives into the error it sends below.

Every trainable layer ``y = f(x; W)`` computes, in its backward pass,

* the weight update with the *local* rule ``dL/dW = delta_y (outer) x`` (identical for all rules), and
* the signal sent to the layer below ``delta_x = M^T delta_y`` where ``M`` is the rule's
  *backward operand*: ``W`` itself for backpropagation, a fixed matrix ``B`` otherwise.

A rule is one class registered with :func:`register_rule`; layers never look at a rule's name.
Adding a rule is adding one class here (and its tests).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import Any, ClassVar

import torch

FeedbackInit = Callable[[torch.Tensor, torch.Generator | None], None]
"""Fills a tensor in place the way the layer draws its forward weight."""

RULES: dict[str, type["LearningRule"]] = {}


def register_rule(cls: type["LearningRule"]) -> type["LearningRule"]:
    """Class decorator: make a rule selectable by its ``name``."""
    if cls.name in RULES:
        raise ValueError(f"learning rule {cls.name!r} is registered twice")
    RULES[cls.name] = cls
    return cls


class LearningRule(ABC):
    """A learning rule: a name, its parameters, and how it makes the feedback tensor ``B``."""

    name: ClassVar[str]
    label: ClassVar[str]
    uses_feedback: ClassVar[bool] = True

    @abstractmethod
    def make_feedback(
        self, weight: torch.Tensor, init: FeedbackInit, generator: torch.Generator | None
    ) -> torch.Tensor | None:
        """The fixed feedback tensor ``B`` for a layer with this ``weight`` (``None``: use ``W``)."""

    def backward_operand(self, weight: torch.Tensor, feedback: torch.Tensor | None) -> torch.Tensor:
        """The tensor that carries the error downward: ``B`` when the rule has one, else ``W``."""
        return weight if feedback is None else feedback

    def params(self) -> dict[str, Any]:
        """The rule's parameters (JSON-serialisable), enough to rebuild it with :func:`get_rule`."""
        return {}

    def spec(self) -> dict[str, Any]:
        """``{"name": ..., **params}``: the rule as stored in configs and checkpoints."""
        return {"name": self.name, **self.params()}

    def display_name(self) -> str:
        """Short human-readable name, e.g. ``FA_EX-100%``."""
        return self.label

    def __eq__(self, other: object) -> bool:
        return isinstance(other, LearningRule) and self.spec() == other.spec()

    def __hash__(self) -> int:
        return hash(tuple(sorted(self.spec().items())))

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.params().items())
        return f"{type(self).__name__}({args})"


@register_rule
class Backprop(LearningRule):
    """Backpropagation: ``delta_x = W^T delta_y`` (the forward weight is transported backward)."""

    name = "bp"
    label = "BP"
    uses_feedback = False

    def make_feedback(
        self, weight: torch.Tensor, init: FeedbackInit, generator: torch.Generator | None
    ) -> None:
        return None


@register_rule
class FeedbackAlignment(LearningRule):
    """Feedback alignment (Lillicrap, Cownden, Tweed & Akerman 2016, Nat. Commun. 7:13276).

    ``delta_x = B^T delta_y`` with ``B`` fixed and random, the same shape as ``W`` and drawn the
    way the layer draws ``W`` (as in Konishi & Miura's reference code). The weight update stays
    ``delta_y x^T``, so the output layer's update equals backpropagation's.
    """

    name = "fa"
    label = "FA"

    def make_feedback(
        self, weight: torch.Tensor, init: FeedbackInit, generator: torch.Generator | None
    ) -> torch.Tensor:
        feedback = torch.empty(weight.shape, dtype=weight.dtype, device="cpu")
        init(feedback, generator)
        return feedback.to(weight.device)


@register_rule
class ExtremeFeedbackAlignment(LearningRule):
    """FA_EX-p% (Konishi, Igarashi & Miura 2023): ``B`` has a fraction ``p``% of entries ``+c``,
    the rest ``-c``, positions chosen at random; ``delta_x = B^T delta_y``.

    ``p = 100`` is the paper's FA_EX-100% (every entry the same positive constant). The paper states
    ``c = 1``; its reference code uses ``c = 0.5`` (only a scale), which is the default here.
    """

    name = "fa_ex"
    label = "FA_EX"

    def __init__(self, p: float = 100.0, c: float = 0.5) -> None:
        p = float(p)
        c = float(c)
        if not 0.0 <= p <= 100.0:
            raise ValueError(f"fa_ex: p must be between 0 and 100 (percent of +c entries), got {p}")
        if not c > 0.0 or c != c or c == float("inf"):
            raise ValueError(f"fa_ex: c must be a positive finite number, got {c}")
        self.p = p
        self.c = c

    def make_feedback(
        self, weight: torch.Tensor, init: FeedbackInit, generator: torch.Generator | None
    ) -> torch.Tensor:
        count = weight.numel()
        positive = round(count * self.p / 100.0)
        signs = torch.full((count,), -self.c, dtype=weight.dtype)
        if positive == count:
            signs.fill_(self.c)
        elif positive > 0:
            signs[torch.randperm(count, generator=generator)[:positive]] = self.c
        return signs.reshape(weight.shape).to(weight.device)

    def params(self) -> dict[str, Any]:
        return {"p": self.p, "c": self.c}

    def display_name(self) -> str:
        return f"FA_EX-{self.p:g}%"


def get_rule(rule: str | LearningRule | dict[str, Any], **params: Any) -> LearningRule:
    """Resolve ``rule`` (a registered name, a spec dict ``{"name": ..., ...}`` or a rule) to a rule.

    >>> get_rule("fa_ex", p=80).display_name()
    'FA_EX-80%'
    """
    if isinstance(rule, LearningRule):
        if params:
            raise ValueError("parameters cannot be given together with a rule object")
        return rule
    if isinstance(rule, dict):
        spec = dict(rule)
        name = spec.pop("name", None)
        return get_rule(str(name), **spec, **params)
    try:
        cls = RULES[rule]
    except KeyError:
        raise ValueError(
            f"unknown learning rule {rule!r}; choose one of {', '.join(sorted(RULES))}"
        ) from None
    try:
        return cls(**params)
    except TypeError as err:
        raise ValueError(f"bad parameters for rule {rule!r}: {err}") from None
