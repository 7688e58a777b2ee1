"""Per-layer table of shapes, neurons, parameters and multiply-adds."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from .model import LAYER_NAMES


@dataclass(frozen=True)
class LayerRow:
    name: str
    kind: str
    output_shape: tuple[int, ...]
    neurons: int
    parameters: int
    mult_adds: int


class LayerTable(list):
    """A list of :class:`LayerRow` that prints as a table (text and HTML)."""

    columns = ("layer", "type", "output (C, H, W)", "neurons", "parameters", "multiply-adds")

    def cells(self) -> list[tuple[str, ...]]:
        rows = [
            (r.name, r.kind, " x ".join(map(str, r.output_shape)), f"{r.neurons:,}", f"{r.parameters:,}", f"{r.mult_adds:,}")
            for r in self
        ]
        total = ("total", "", "", f"{sum(r.neurons for r in self):,}", f"{sum(r.parameters for r in self):,}",
                 f"{sum(r.mult_adds for r in self):,}")
        return rows + [total]

    def __str__(self) -> str:
        cells = [self.columns, *self.cells()]
        widths = [max(len(row[i]) for row in cells) for i in range(len(self.columns))]
        lines = ["  ".join(c.ljust(w) if i < 3 else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths))) for row in cells]
        lines.insert(1, "  ".join("-" * w for w in widths))
        return "\n".join(lines)

    def _repr_html_(self) -> str:
        head = "".join(f"<th>{c}</th>" for c in self.columns)
        body = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in row) + "</tr>" for row in self.cells())
        return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _mult_adds(layer: nn.Module, output: torch.Tensor) -> int:
    if isinstance(layer, nn.Conv2d):
        per_output = layer.in_channels // layer.groups * layer.kernel_size[0] * layer.kernel_size[1]
        return output[0].numel() * per_output
    if isinstance(layer, nn.Linear):
        return layer.in_features * layer.out_features
    return 0


@torch.no_grad()
def layer_table(model: nn.Module, names: tuple[str, ...] = LAYER_NAMES) -> LayerTable:
    """Run one image of ``model.input_size`` through ``model`` and tabulate each named layer."""
    rows: dict[str, LayerRow] = {}

    def hook(name: str):
        def record(layer: nn.Module, _inputs, output: torch.Tensor) -> None:
            rows[name] = LayerRow(
                name=name,
                kind=type(layer).__name__,
                output_shape=tuple(output.shape[1:]),
                neurons=output[0].numel(),
                parameters=sum(p.numel() for p in layer.parameters()),
                mult_adds=_mult_adds(layer, output),
            )
        return record

    handles = [getattr(model, n).register_forward_hook(hook(n)) for n in names]
    was_training = model.training
    try:
        model.eval()
        device = next(model.parameters()).device
        model(torch.zeros(1, 3, model.input_size, model.input_size, device=device))
    finally:
        model.train(was_training)
        for h in handles:
            h.remove()
    return LayerTable(rows[n] for n in names)
