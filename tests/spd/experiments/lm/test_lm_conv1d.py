"""GPT-2's Conv1D (weight stored as (d_in, d_out)) decomposed end to end in a real GPT2LMHeadModel."""

import torch
from transformers import AutoModelForCausalLM

from spd.component_model import ComponentModel, ModuleMask
from spd.module_patterns import resolve_module_patterns

PATTERNS = [("transformer.h.*.attn.c_*", 5), ("transformer.h.*.mlp.c_*", 7)]


def gpt2_component_model(directory, use_delta: bool) -> ComponentModel:
    target = AutoModelForCausalLM.from_pretrained(directory).eval()
    resolved = resolve_module_patterns(target, PATTERNS)
    assert {type(target.get_submodule(p)).__name__ for p in resolved} == {"Conv1D"}
    torch.manual_seed(0)
    module_to_c = {path: c for path, (_, c) in resolved.items()}
    return ComponentModel(target, module_to_c, "mlp", [4], "leaky_hard", use_delta, "logits")


def ones_masks(model: ComponentModel, shape: tuple[int, ...], delta: bool) -> dict[str, ModuleMask]:
    return {
        path: ModuleMask(mask=torch.ones(*shape, c), delta_mask=torch.ones(shape) if delta else None)
        for path, c in model.module_to_c.items()
    }


def test_all_ones_masks_with_delta_reproduce_the_target(saved_models):
    model = gpt2_component_model(saved_models["gpt2"], use_delta=True)
    ids = torch.randint(0, 50, (2, 6), generator=torch.Generator().manual_seed(0))
    target = model(ids)
    with torch.no_grad(), model.weight_deltas():
        with_delta = model(ids, masks=ones_masks(model, (2, 6), delta=True))
        without_delta = model(ids, masks=ones_masks(model, (2, 6), delta=False))
    torch.testing.assert_close(with_delta, target, atol=1e-5, rtol=1e-5)
    # Freshly initialised components are not the target: the masked forward really used them.
    assert (without_delta - target).abs().max() > 1e-3


def test_components_equal_to_the_conv1d_weight_reproduce_it_without_delta(saved_models):
    """V = I, U = the Conv1D weight (d_in, d_out): the components' sum is exactly the module."""
    model = gpt2_component_model(saved_models["gpt2"], use_delta=False)
    for path in model.module_paths:
        conv = model.target.get_submodule(path)
        d_in = conv.weight.shape[0]
        model.module_to_c[path] = d_in
        components = model.components_of(path)
        components.V = torch.nn.Parameter(torch.eye(d_in))
        components.U = torch.nn.Parameter(conv.weight.detach().clone())
        torch.testing.assert_close(components.weight, conv.weight.T)
    ids = torch.randint(0, 50, (2, 6), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        out = model(ids, masks=ones_masks(model, (2, 6), delta=False))
    torch.testing.assert_close(out, model(ids), atol=1e-5, rtol=1e-5)
