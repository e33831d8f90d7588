"""Quick CUDA timing probe (development aid; the benchmark proper is
`python -m selu_ext.bench`): bandwidth of selu_ext against copy, F.selu and
torch.compile at a few sizes, and per-call time of small tensors with autograd."""
import torch, torch.nn.functional as F, selu_ext
from selu_ext import ops

def bench(fn, reps=50):
    for _ in range(5): fn()
    torch.cuda.synchronize()
    ts = []
    for _ in range(reps):
        a, b = torch.cuda.Event(True), torch.cuda.Event(True)
        a.record(); fn(); b.record(); b.synchronize(); ts.append(a.elapsed_time(b))
    ts.sort(); return ts[len(ts)//2]

def wall(fn, reps=2000):
    import time
    for _ in range(200): fn()
    torch.cuda.synchronize(); t = time.perf_counter()
    for _ in range(reps): fn()
    torch.cuda.synchronize(); return (time.perf_counter() - t) / reps * 1e6

cf = torch.compile(F.selu)
for dtype in (torch.float32, torch.bfloat16):
    for n in (1 << 20, 1 << 24, 1 << 28):
        x = torch.randn(n, device="cuda", dtype=dtype); y = ops.selu(x); g = torch.randn_like(x); out = torch.empty_like(x)
        rng = torch.tensor([1, 0], device="cuda")
        t = {k: bench(f) for k, f in dict(copy=lambda: out.copy_(x), ext=lambda: ops.selu(x), torch=lambda: F.selu(x), compiled=lambda: cf(x),
              ext_bwd=lambda: ops.selu_backward(g, y), torch_bwd=lambda: torch.ops.aten.elu_backward(g, 1.6732632423543772, 1.0507009873554805, 1.0, False, x),
              ext_sad=lambda: selu_ext.selu_alpha_dropout(x, 0.1, True), torch_sad=lambda: F.alpha_dropout(F.selu(x), 0.1, True),
              ext_ad=lambda: selu_ext.alpha_dropout(x, 0.1, True), torch_ad=lambda: F.alpha_dropout(x, 0.1, True)).items()}
        gb = 2 * n * x.element_size() / 1e9
        print(f"{dtype} n=2^{n.bit_length()-1}: copy {gb/t['copy']:.2f} TB/s ({t['copy']*1e3:.1f}us) ext {gb/t['ext']:.2f} TB/s ({100*t['copy']/t['ext']:.1f}% of copy) "
              f"torch {gb/t['torch']:.2f} compiled {gb/t['compiled']:.2f} | bwd ext {1.5*gb/t['ext_bwd']:.2f} torch {1.5*gb/t['torch_bwd']:.2f} TB/s | sad fwd x{t['torch_sad']/t['ext_sad']:.1f} ad x{t['torch_ad']/t['ext_ad']:.1f}", flush=True)
for n in (4096, 65536):
    x = torch.randn(n, device="cuda", requires_grad=True)
    g = torch.randn(n, device="cuda")
    e = wall(lambda: F.selu(x).backward(g))
    o = wall(lambda: selu_ext.selu(x).backward(g))
    fn = wall(lambda: selu_ext.SELUFunction.apply(x).backward(g))
    print(f"small n={n}: eager {e:.1f}us selu_ext {o:.1f}us (+{o-e:.1f}) SELUFunction {fn:.1f}us", flush=True)
