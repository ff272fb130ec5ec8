"""The paper's architectures, built by name for a dataset shape and a learning rule.

Konishi & Miura (2023), "Biologically plausible local synaptic learning rules implement CNNs and
denoising autoencoders": a fully connected classifier, a locally connected CNN (MNIST and CIFAR-10
shapes), the same CNN with shared convolutions (their BP baseline), and a denoising autoencoder.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from .layers import (
    FeedbackConv2d,
    FeedbackLinear,
    LocallyConnected2d,
    kaiming_uniform_init,
)
from .rules import LearningRule, get_rule


class Network(nn.Sequential):
    """A sequential network that knows what it is: model name, input shape, task and rule.

    ``task`` is ``"classify"`` (outputs class logits) or ``"denoise"`` (outputs pixel logits of
    the input's shape; :meth:`predict` applies the sigmoid).
    """

    def __init__(
        self,
        layers: OrderedDict[str, nn.Module],
        *,
        name: str,
        dataset: str,
        input_shape: tuple[int, int, int],
        task: str,
        rule: LearningRule,
    ) -> None:
        super().__init__(layers)
        self.model_name = name
        self.dataset = dataset
        self.input_shape = input_shape
        self.task = task
        self.rule = rule

    @torch.no_grad()
    def predict(self, x: torch.Tensor) -> torch.Tensor:
        """Class probabilities (classifiers) or reconstructed pixels in [0, 1] (denoisers)."""
        out = self(x)
        return torch.softmax(out, dim=1) if self.task == "classify" else torch.sigmoid(out)

    def describe(self) -> dict[str, Any]:
        """JSON-ready description: enough to rebuild the architecture with :func:`build_model`."""
        return {
            "model": self.model_name,
            "dataset": self.dataset,
            "input_shape": list(self.input_shape),
            "task": self.task,
            "rule": self.rule.spec(),
            "parameters": sum(p.numel() for p in self.parameters()),
        }


@dataclass(frozen=True)
class ModelSpec:
    """A registered architecture: its builder and a one-line description."""

    name: str
    description: str
    task: str
    build: Callable[[tuple[int, int, int], int, LearningRule, torch.Generator], OrderedDict[str, nn.Module]]


MODELS: dict[str, ModelSpec] = {}


def register_model(name: str, description: str, task: str = "classify"):
    """Decorator: register an architecture builder under ``name``."""

    def wrap(build):
        if name in MODELS:
            raise ValueError(f"model {name!r} is registered twice")
        MODELS[name] = ModelSpec(name, description, task, build)
        return build

    return wrap


@register_model("mlp", "fully connected: input - 128 ReLU - 10")
def _mlp(shape, classes, rule, gen) -> OrderedDict[str, nn.Module]:
    return OrderedDict(
        flatten=nn.Flatten(),
        fc1=FeedbackLinear(math.prod(shape), 128, rule=rule, generator=gen),
        relu1=nn.ReLU(),
        fc2=FeedbackLinear(128, classes, rule=rule, generator=gen),
    )


def _cnn_plan(shape: tuple[int, int, int]) -> tuple[list[int], type[nn.Module]]:
    """Channel plan and pooling of the paper's CNNs: MNIST-sized inputs get 2 stages, RGB 3."""
    channels, height, _ = shape
    if channels == 1 and height == 28:
        return [6, 16], nn.MaxPool2d
    if channels == 3 and height == 32:
        return [32, 64, 64], nn.AvgPool2d
    raise ValueError(f"the paper's CNNs are defined for 1x28x28 and 3x32x32 inputs, not {shape}")


def _pool(kind: type[nn.Module]) -> nn.Module:
    return nn.MaxPool2d(2, 2) if kind is nn.MaxPool2d else nn.AvgPool2d(3, 2)


def _pooled(size: int, kind: type[nn.Module]) -> int:
    return size // 2 if kind is nn.MaxPool2d else (size - 3) // 2 + 1


def _cnn(shape, classes, rule, gen, local: bool, local_bias: bool = True) -> OrderedDict[str, nn.Module]:
    plan, pool = _cnn_plan(shape)
    layers: OrderedDict[str, nn.Module] = OrderedDict()
    in_ch, size = shape[0], shape[1]
    prefix = "lc" if local else "conv"
    for i, out_ch in enumerate(plan, start=1):
        if local:
            layer: nn.Module = LocallyConnected2d(
                in_ch, out_ch, 5, size, padding=2, bias=local_bias, rule=rule, generator=gen
            )
        else:
            layer = FeedbackConv2d(in_ch, out_ch, 5, padding=2, rule=rule, generator=gen)
        layers[f"{prefix}{i}"] = layer
        layers[f"tanh{i}"] = nn.Tanh()
        layers[f"pool{i}"] = _pool(pool)
        in_ch, size = out_ch, _pooled(size, pool)
    n = len(plan) + 1
    layers["flatten"] = nn.Flatten()
    layers[f"fc{n}"] = FeedbackLinear(in_ch * size * size, 128, rule=rule, generator=gen)
    layers[f"tanh{n}"] = nn.Tanh()
    layers[f"fc{n + 1}"] = FeedbackLinear(128, classes, rule=rule, generator=gen)
    return layers


@register_model("lc_cnn", "locally connected CNN (the paper's FA network)")
def _lc_cnn(shape, classes, rule, gen) -> OrderedDict[str, nn.Module]:
    return _cnn(shape, classes, rule, gen, local=True)


@register_model("lc_cnn_nobias", "locally connected CNN whose LC layers have no bias (as the reference code trains it)")
def _lc_cnn_nobias(shape, classes, rule, gen) -> OrderedDict[str, nn.Module]:
    """The reference code's LC bias never receives a gradient (an indexing slip) and stays 0:
    the same network as ``lc_cnn`` with the LC layers' biases left out."""
    return _cnn(shape, classes, rule, gen, local=True, local_bias=False)


@register_model("lc_cnn_lc_bp", "locally connected CNN whose LC layers pass the error down with W (the rule acts on the FC layers)")
def _lc_cnn_lc_bp(shape, classes, rule, gen) -> OrderedDict[str, nn.Module]:
    """A diagnostic hybrid: ``lc_cnn`` whose locally connected layers send ``delta_x = W^T delta_y``
    (backpropagation) while the fully connected layers follow the rule. It is what a network gets
    whose LC layers are built from ordinary autograd operations, with the rule's custom backward
    only on the dense layers. Every ``W`` and the FC layers' ``B`` equal ``lc_cnn``'s for a seed (the
    LC layers draw their ``B`` and then drop it)."""
    layers = _cnn(shape, classes, rule, gen, local=True)
    for name, layer in layers.items():
        if name.startswith("lc"):
            layer.rule = get_rule("bp")
            layer.feedback = None
    return layers


@register_model("conv_cnn", "shared-weight CNN of the same shape (the paper's BP baseline)")
def _conv_cnn(shape, classes, rule, gen) -> OrderedDict[str, nn.Module]:
    return _cnn(shape, classes, rule, gen, local=False)


@register_model("dae", "denoising autoencoder: input - 200 ReLU - input, sigmoid", task="denoise")
def _dae(shape, classes, rule, gen) -> OrderedDict[str, nn.Module]:
    pixels = math.prod(shape)
    feedback_init = kaiming_uniform_init(0.5)
    return OrderedDict(
        flatten=nn.Flatten(),
        fc1=FeedbackLinear(pixels, 200, rule=rule, feedback_init=feedback_init, generator=gen),
        relu1=nn.ReLU(),
        fc2=FeedbackLinear(200, pixels, rule=rule, feedback_init=feedback_init, generator=gen),
        unflatten=nn.Unflatten(1, shape),
    )


DATASET_SHAPES: dict[str, tuple[tuple[int, int, int], int]] = {
    "mnist": ((1, 28, 28), 10),
    "fashion_mnist": ((1, 28, 28), 10),
    "cifar10": ((3, 32, 32), 10),
}

FEEDBACK_SEED_OFFSET = 0x5EED
"""``B`` is drawn from its own generator so that ``W`` is identical across rules for a seed."""


def build_model(
    name: str,
    dataset: str = "mnist",
    rule: str | LearningRule | dict[str, Any] = "bp",
    seed: int | None = None,
    **rule_params: Any,
) -> Network:
    """Build architecture ``name`` for ``dataset``'s input shape under learning ``rule``.

    With a ``seed`` the forward weights depend only on the seed (not on the rule), and ``B`` is
    drawn from a separate generator, so BP, FA and FA_EX runs start from the same ``W``.
    """
    try:
        spec = MODELS[name]
    except KeyError:
        raise ValueError(f"unknown model {name!r}; choose one of {', '.join(sorted(MODELS))}") from None
    try:
        shape, classes = DATASET_SHAPES[dataset]
    except KeyError:
        raise ValueError(
            f"unknown dataset {dataset!r}; choose one of {', '.join(sorted(DATASET_SHAPES))}"
        ) from None
    resolved = get_rule(rule, **rule_params)
    feedback_gen = torch.Generator()
    if seed is None:
        feedback_gen.seed()
        layers = spec.build(shape, classes, resolved, feedback_gen)
    else:
        feedback_gen.manual_seed(seed + FEEDBACK_SEED_OFFSET)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            layers = spec.build(shape, classes, resolved, feedback_gen)
    return Network(layers, name=name, dataset=dataset, input_shape=shape, task=spec.task, rule=resolved)
