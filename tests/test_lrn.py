"""Local response normalisation against an independent loop over channels (paper, section 3.3)."""

import pytest
import torch
import torch._dynamo
from torch.nn import functional as F

import alexnet_lib.lrn as lrn
from alexnet_lib import LocalResponseNorm, local_response_norm


def reference_lrn(x, size, alpha, beta, k, convention):
    """b[i] = a[i] / (k + alpha' * sum_{j=max(0,i-n/2)}^{min(N-1,i+n/2)} a[j]^2)^beta, one channel at a time."""
    coefficient = alpha if convention == "paper" else alpha / size
    channels = x.shape[1]
    out = torch.empty_like(x)
    for i in range(channels):
        lo, hi = max(0, i - size // 2), min(channels - 1, i + (size - 1) // 2)
        energy = sum(x[:, j] ** 2 for j in range(lo, hi + 1))
        out[:, i] = x[:, i] / (k + coefficient * energy) ** beta
    return out


CASES = [
    # (channels, size, alpha, beta, k): the paper's constants, a large alpha that makes the
    # normaliser matter, an even window, and windows wider than the channel count.
    (96, 5, 1e-4, 0.75, 2.0),
    (16, 5, 1.0, 0.75, 2.0),
    (12, 4, 0.5, 0.6, 1.0),
    (3, 5, 2.0, 0.75, 2.0),
    (1, 5, 2.0, 0.75, 1.0),
    (2, 7, 1.0, 1.0, 0.5),
]


@pytest.mark.parametrize("convention", ["paper", "cuda-convnet"])
@pytest.mark.parametrize("channels,size,alpha,beta,k", CASES)
def test_matches_channel_loop(convention, channels, size, alpha, beta, k):
    torch.manual_seed(0)
    x64 = torch.randn(3, channels, 5, 4, dtype=torch.float64) * 3
    expected = reference_lrn(x64, size, alpha, beta, k, convention)
    exact = local_response_norm(x64, size, alpha, beta, k, convention)
    assert (exact - expected).abs().max().item() < 1e-12
    single = local_response_norm(x64.float(), size, alpha, beta, k, convention)
    assert (single.double() - expected).abs().max().item() < 1e-6


@pytest.mark.parametrize("size", [1, 2, 3, 4, 5, 6, 9])
def test_cuda_convnet_equals_torch_builtin(size):
    torch.manual_seed(1)
    x = torch.randn(2, 11, 6, 6) * 4
    ours = local_response_norm(x, size, alpha=0.3, beta=0.75, k=2.0, convention="cuda-convnet")
    builtin = F.local_response_norm(x, size, alpha=0.3, beta=0.75, k=2.0)
    assert (ours - builtin).abs().max().item() < 1e-6


def test_conventions_differ_by_alpha_over_n():
    x = torch.randn(2, 10, 3, 3, dtype=torch.float64) * 5
    paper = local_response_norm(x, 5, alpha=1e-4 / 5, convention="paper")
    code = local_response_norm(x, 5, alpha=1e-4, convention="cuda-convnet")
    assert torch.equal(paper, code)
    assert not torch.allclose(local_response_norm(x, 5, alpha=1e-4, convention="paper"), code)


@pytest.mark.parametrize("convention", ["paper", "cuda-convnet"])
@pytest.mark.parametrize("channels,size", [(7, 5), (2, 5), (6, 4)])
def test_gradcheck(convention, channels, size):
    torch.manual_seed(2)
    x = torch.randn(2, channels, 3, 3, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(
        lambda t: local_response_norm(t, size, alpha=0.7, beta=0.75, k=1.5, convention=convention), (x,)
    )


def test_gradient_matches_autograd_of_reference():
    torch.manual_seed(3)
    x = (torch.randn(2, 9, 4, 4, dtype=torch.float64) * 3).requires_grad_()
    g = torch.randn(2, 9, 4, 4, dtype=torch.float64)
    (ours,) = torch.autograd.grad(local_response_norm(x, 5, 0.5, 0.75, 2.0), x, g)
    (ref,) = torch.autograd.grad(reference_lrn(x, 5, 0.5, 0.75, 2.0, "paper"), x, g)
    assert (ours - ref).abs().max().item() < 1e-12


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float32, torch.float64])
def test_dtypes_and_shapes(dtype):
    x = torch.randn(2, 8, 5, 5).to(dtype)
    y = local_response_norm(x)
    assert y.dtype == dtype and y.shape == x.shape
    assert torch.allclose(y.double(), reference_lrn(x.double(), 5, 1e-4, 0.75, 2.0, "paper"), rtol=1e-2, atol=1e-2)


def test_other_spatial_ranks():
    x = torch.randn(2, 6, 7, dtype=torch.float64)
    assert torch.allclose(local_response_norm(x, 3, 1.0, 0.75, 2.0, "cuda-convnet"), F.local_response_norm(x, 3, 1.0, 0.75, 2.0))


def test_grouped_module_normalises_each_group_alone():
    torch.manual_seed(4)
    x = torch.randn(2, 8, 3, 3, dtype=torch.float64)
    grouped = LocalResponseNorm(size=5, alpha=1.0, groups=2)(x)
    halves = torch.cat([local_response_norm(x[:, :4], 5, 1.0), local_response_norm(x[:, 4:], 5, 1.0)], dim=1)
    assert torch.equal(grouped, halves)


def test_bad_input():
    with pytest.raises(ValueError, match="convention"):
        local_response_norm(torch.randn(1, 3, 2, 2), convention="caffe")
    with pytest.raises(ValueError, match="at least 3 dimensions"):
        local_response_norm(torch.randn(4, 3))
    with pytest.raises(TypeError, match="floating-point"):
        local_response_norm(torch.ones(1, 3, 2, 2, dtype=torch.int64))


@pytest.mark.parametrize(
    "options, message",
    [
        ({"size": 0, "convention": "cuda-convnet"}, "size must be a positive integer, got 0"),
        ({"groups": 0}, "groups must be a positive integer, got 0"),
        ({"alpha": -1.0}, "alpha must be >= 0, got -1.0"),
        ({"k": 0.0}, "k must be > 0, got 0.0"),
        ({"k": -2.0}, "k must be > 0, got -2.0"),
        ({"beta": float("nan")}, "beta must be a finite number"),
    ],
)
def test_bad_parameters_are_refused_up_front(options, message):
    # Before: size 0 and groups 0 divided by zero, and a negative alpha or k <= 0 gave NaN without a word.
    with pytest.raises(ValueError, match=message):
        LocalResponseNorm(**options)
    if "groups" not in options:
        with pytest.raises(ValueError, match=message):
            local_response_norm(torch.randn(1, 8, 2, 2), **options)


def test_the_bounds_themselves_are_allowed():
    x = torch.randn(1, 8, 2, 2)
    assert torch.equal(LocalResponseNorm(size=1, alpha=0.0, k=1.0)(x), x)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_matches_cpu():
    x = torch.randn(2, 16, 5, 5)
    assert torch.allclose(local_response_norm(x.cuda()).cpu(), local_response_norm(x), atol=1e-6)


def test_cpu_slices_give_the_same_numbers(monkeypatch):
    torch.manual_seed(5)
    x = (torch.randn(5, 12, 6, 6) * 3).requires_grad_()
    g = torch.randn(5, 12, 6, 6)
    whole = local_response_norm(x, 5, 0.5)
    (whole_grad,) = torch.autograd.grad(whole, x, g)
    monkeypatch.setattr(lrn, "CPU_SLICE_BYTES", 1)
    sliced = local_response_norm(x, 5, 0.5)
    (sliced_grad,) = torch.autograd.grad(sliced, x, g)
    assert torch.equal(whole, sliced) and torch.equal(whole_grad, sliced_grad)


def test_channels_last_keeps_layout_and_values():
    torch.manual_seed(6)
    x = torch.randn(2, 8, 4, 4, dtype=torch.float64).contiguous(memory_format=torch.channels_last).requires_grad_()
    y = local_response_norm(x, 5, 0.7)
    assert y.is_contiguous(memory_format=torch.channels_last)
    assert (y - reference_lrn(x.detach(), 5, 0.7, 0.75, 2.0, "paper")).abs().max().item() < 1e-12
    assert torch.autograd.gradcheck(lambda t: local_response_norm(t, 5, 0.7), (x,))


@pytest.mark.parametrize("groups", [1, 2])
def test_compiled_module_matches_eager(groups):
    torch.manual_seed(7)
    module = LocalResponseNorm(5, 0.7, groups=groups)
    compiled = torch.compile(module, fullgraph=True, backend="aot_eager")
    x = torch.randn(2, 8, 4, 4, requires_grad=True)
    eager_out, compiled_out = module(x), compiled(x)
    (eager_grad,) = torch.autograd.grad(eager_out.sum(), x)
    (compiled_grad,) = torch.autograd.grad(compiled_out.sum(), x)
    assert torch.allclose(eager_out, compiled_out, atol=1e-6)
    assert torch.allclose(eager_grad, compiled_grad, atol=1e-6)


# The fused kernels: torch.compile'd forward and backward.  Each geometry below compiles once per
# process (and is cached on disk after), so the tests share two: contiguous float64 with an odd
# window and the paper's beta (d^(-3/4) from square roots), and channels_last float32 in two
# groups with an even window, cuda-convnet's alpha and another beta (a general power).
FUSED_CASES = {
    "contiguous-float64": dict(shape=(3, 12, 5, 4), dtype=torch.float64, channels_last=False,
                               groups=1, size=5, alpha=0.5, beta=0.75, k=2.0, convention="paper"),
    "channels_last-float32-groups": dict(shape=(3, 16, 5, 4), dtype=torch.float32, channels_last=True,
                                         groups=2, size=4, alpha=2.0, beta=0.6, k=1.0, convention="cuda-convnet"),
}


def fused_input(case, batch=None):
    shape = (batch or case["shape"][0],) + case["shape"][1:]
    x = torch.randn(shape, dtype=torch.float64) * 3
    if case["channels_last"]:
        x = x.contiguous(memory_format=torch.channels_last)
    return x.to(case["dtype"]).requires_grad_()


def fused_module(case):
    return LocalResponseNorm(case["size"], case["alpha"], case["beta"], case["k"], case["convention"], case["groups"])


def grouped_reference(x, case):
    """reference_lrn on each group of channels, side by side."""
    return torch.cat([reference_lrn(part, case["size"], case["alpha"], case["beta"], case["k"], case["convention"])
                      for part in x.chunk(case["groups"], dim=1)], dim=1)


def output_and_grad(module, x, g):
    out = module(x)
    (grad,) = torch.autograd.grad(out, x, g)
    return out, grad


@pytest.fixture
def count_fallback(monkeypatch):
    """Calls of the fallback's forward and backward, counted."""
    calls = {"forward": 0, "backward": 0}
    for name in calls:
        original = getattr(lrn, f"_fallback_{name}")

        def counted(*args, _name=name, _original=original):
            calls[_name] += 1
            return _original(*args)

        monkeypatch.setattr(lrn, f"_fallback_{name}", counted)
    return calls


@pytest.fixture
def fused(monkeypatch, count_fallback):
    """Every tensor takes the fused kernels where they run; returns the fallback's call counts."""
    monkeypatch.delenv(lrn.FUSED_ENV, raising=False)
    reason = lrn.fused_unavailable("cpu")
    if reason is not None:
        pytest.skip(f"no fused kernels here: {reason}")
    monkeypatch.setattr(lrn, "FUSED_MIN_ELEMENTS", 0)
    return count_fallback


NO_FALLBACK = {"forward": 0, "backward": 0}


@pytest.mark.parametrize("name", FUSED_CASES)
def test_fused_kernels_and_fallback_match_the_reference(name, fused, monkeypatch):
    case = FUSED_CASES[name]
    torch.manual_seed(8)
    x = fused_input(case)
    g = torch.randn_like(x)
    module = fused_module(case)
    out, grad = output_and_grad(module, x, g)
    x64 = x.detach().double().requires_grad_()
    expected = grouped_reference(x64, case)
    (expected_grad,) = torch.autograd.grad(expected, x64, g.double())
    tolerance = 1e-12 if case["dtype"] == torch.float64 else 1e-5
    assert out.dtype == x.dtype and out.stride() == x.stride() and grad.stride() == x.stride()
    assert (out.double() - expected).abs().max().item() < tolerance
    assert (grad.double() - expected_grad).abs().max().item() < tolerance
    assert fused == NO_FALLBACK

    monkeypatch.setenv(lrn.FUSED_ENV, "0")
    fallback_out, fallback_grad = output_and_grad(module, x, g)
    assert (out - fallback_out).abs().max().item() < tolerance
    assert (grad - fallback_grad).abs().max().item() < tolerance


def test_fused_gradcheck(fused):
    case = FUSED_CASES["contiguous-float64"]
    torch.manual_seed(9)
    assert torch.autograd.gradcheck(fused_module(case), (fused_input(case),))
    assert fused == NO_FALLBACK


def test_fused_kernels_do_not_recompile_for_another_batch_size(fused):
    from torch._dynamo.utils import counters

    case = FUSED_CASES["contiguous-float64"]
    module = fused_module(case)
    x = fused_input(case)
    output_and_grad(module, x, torch.ones_like(x))
    graphs = counters["stats"]["unique_graphs"]
    for batch in (2, 7):  # an epoch's shorter last batch, an evaluation batch
        x = fused_input(case, batch)
        output_and_grad(module, x, torch.ones_like(x))
    assert counters["stats"]["unique_graphs"] == graphs and fused == NO_FALLBACK


def test_fallback_without_a_cpp_compiler(monkeypatch, count_fallback):
    from torch._inductor import cpp_builder, exc

    checks = []

    def no_compiler():
        checks.append(1)
        raise exc.InvalidCxxCompiler()

    monkeypatch.delenv(lrn.FUSED_ENV, raising=False)
    monkeypatch.setattr(cpp_builder, "get_cpp_compiler", no_compiler)
    monkeypatch.setattr(lrn, "_unavailable", {})
    monkeypatch.setattr(lrn, "FUSED_MIN_ELEMENTS", 0)
    monkeypatch.setattr(lrn, "_run_fused", lambda *args: pytest.fail("the fused kernels ran"))
    x = torch.randn(2, 8, 3, 3, requires_grad=True)
    for _ in range(2):
        output_and_grad(LocalResponseNorm(), x, torch.ones_like(x))
    assert "InvalidCxxCompiler" in lrn.fused_unavailable("cpu")
    assert count_fallback == {"forward": 2, "backward": 2} and len(checks) == 1  # decided once


def test_environment_forces_the_fallback(monkeypatch, count_fallback):
    monkeypatch.setattr(lrn, "FUSED_MIN_ELEMENTS", 0)
    monkeypatch.setenv(lrn.FUSED_ENV, "0")
    assert lrn.fused_unavailable("cpu") == "ALEXNET_LRN_FUSED=0"
    x = torch.randn(2, 8, 3, 3, requires_grad=True)
    output_and_grad(LocalResponseNorm(), x, torch.ones_like(x))
    assert count_fallback == {"forward": 1, "backward": 1}
    monkeypatch.setenv(lrn.FUSED_ENV, "yes")
    with pytest.raises(ValueError, match="ALEXNET_LRN_FUSED must be 0 .* or 1"):
        local_response_norm(x)


def test_a_failed_compile_falls_back_for_good(monkeypatch, count_fallback):
    attempts = []

    def broken_compile(kernel):
        def kernel_that_fails(*args):
            attempts.append(kernel.__name__)
            raise torch._dynamo.exc.TorchDynamoException("simulated compiler crash")

        return kernel_that_fails

    monkeypatch.delenv(lrn.FUSED_ENV, raising=False)
    monkeypatch.setattr(lrn, "_unavailable", {"cpu": None})
    monkeypatch.setattr(lrn, "_compiled", broken_compile)
    monkeypatch.setattr(lrn, "FUSED_MIN_ELEMENTS", 0)
    torch.manual_seed(10)
    x = torch.randn(2, 8, 3, 3, dtype=torch.float64, requires_grad=True)
    with pytest.warns(UserWarning, match="eager fallback from now on .*simulated compiler crash"):
        out = local_response_norm(x, 5, 0.5)
    assert (out - reference_lrn(x.detach(), 5, 0.5, 0.75, 2.0, "paper")).abs().max().item() < 1e-12
    local_response_norm(x, 5, 0.5)
    assert attempts == ["_fused_forward"] and count_fallback["forward"] == 2
    assert "simulated compiler crash" in lrn.fused_unavailable("cpu")


def test_more_shapes_than_the_compile_cache_holds_fall_back(monkeypatch, fused):
    monkeypatch.setattr(torch._dynamo.config, "recompile_limit", 0)
    x = torch.randn(2, 7, 3, 3, dtype=torch.float64, requires_grad=True)
    out = local_response_norm(x, 3, 0.5)
    assert (out - reference_lrn(x.detach(), 3, 0.5, 0.75, 2.0, "paper")).abs().max().item() < 1e-12
    assert fused["forward"] == 1
    assert lrn.fused_unavailable("cpu") is None  # only this shape fell back, not the device
