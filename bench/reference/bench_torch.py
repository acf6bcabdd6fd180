"""PyTorch reference figures for the shapes `ie-bench` measures (bench/ie-bench/main.swift). Reference only.

Prints, for 1 and 2 threads (torch.set_num_threads):
- Conv3d k=3, padding 1, stride 1, no bias, batch 2: 32->32 channels at 64^3 and 32^3, 1->32 at 64^3.
  GFLOP/s of forward (2*N*Cout*Cin*27*voxels) and of forward+backward (3x that: input and weight gradients).
- Seconds per UNet3D training step: f=32, 1 image channel, 2 classes, batch 2, 64^3 crops, InnerEye's SoftDice
  loss, Adam with InnerEye's defaults (forward, loss, backward, step; zero_grad included).
Each figure is the best of --repeats timings (the least disturbed by other processes on a shared machine),
after one warm-up run; "per CPU-second" divides by the process CPU time (all threads) instead of wall time.

    bench/reference/bench_torch.py [--threads 1,2] [--repeats 3] [--skip-unet] [--unet-size 64] [--features 32]
"""
import argparse
import json
import os
import resource
import sys
import time

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from unet3d_torch import UNet3D, innereye_adam, soft_dice_loss  # noqa: E402


def bench_line(figure: str, threads: int, **values) -> None:
    """The figure for bench/run_bench.py (`make bench`), which pairs it with ie-bench's of the same name."""
    record = {"figure": figure, "impl": "torch", "threads": threads, "precision": "fp32", **values}
    print("BENCH " + json.dumps(record, sort_keys=True), flush=True)


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def best(repeats: int, body) -> tuple:
    """(fastest wall seconds, fastest process CPU seconds) over `repeats` runs after one warm-up run.
    CPU seconds count all threads; on a loaded machine they are less disturbed than wall time."""
    body()  # warm-up: oneDNN primitive creation, first touch of buffers
    fastest, fastest_cpu = float("inf"), float("inf")
    for _ in range(repeats):
        start, start_cpu = time.perf_counter(), time.process_time()
        body()
        fastest = min(fastest, time.perf_counter() - start)
        fastest_cpu = min(fastest_cpu, time.process_time() - start_cpu)
    return fastest, fastest_cpu


def conv_figures(threads: int, repeats: int) -> None:
    for in_channels, out_channels, size in [(32, 32, 64), (32, 32, 32), (1, 32, 64)]:
        torch.manual_seed(2)
        conv = torch.nn.Conv3d(in_channels, out_channels, 3, stride=1, padding=1, bias=False)
        x = torch.rand(2, in_channels, size, size, size) * 2 - 1
        flops = 2.0 * 2 * out_channels * in_channels * 27 * size ** 3

        def forward():
            with torch.no_grad():
                conv(x)

        x_grad = x.clone().requires_grad_(True)

        def forward_backward():
            conv.weight.grad = None
            x_grad.grad = None
            out = conv(x_grad)
            out.backward(out.detach())

        forward_wall, forward_cpu = best(repeats, forward)
        both_wall, both_cpu = best(repeats, forward_backward)
        print(f"  {in_channels:2d}->{out_channels:2d} at {size}^3, {threads} thread(s): "
              f"forward {flops / forward_wall / 1e9:.1f} GFLOP/s (per CPU-second {flops / forward_cpu / 1e9:.1f}), "
              f"forward+backward {3 * flops / both_wall / 1e9:.1f} GFLOP/s "
              f"(per CPU-second {3 * flops / both_cpu / 1e9:.1f})", flush=True)
        name = f"conv_{in_channels}_{out_channels}_{size}"
        bench_line(name + "_fwd", threads, gflops=flops / forward_wall / 1e9,
                   gflops_per_cpu_second=flops / forward_cpu / 1e9)
        bench_line(name + "_fwdbwd", threads, gflops=3 * flops / both_wall / 1e9,
                   gflops_per_cpu_second=3 * flops / both_cpu / 1e9)


def unet_step_seconds(threads: int, repeats: int, size: int, batch: int, features: int) -> float:
    torch.manual_seed(42)
    model = UNet3D(1, features, 2)
    model.train()
    optimizer = innereye_adam(model.parameters(), lr=1e-4)
    x = torch.rand(batch, 1, size, size, size) * 2 - 1
    labels = (torch.arange(size ** 3) % 7 == 0).long().reshape(1, size, size, size).expand(batch, -1, -1, -1)
    target = torch.nn.functional.one_hot(labels, 2).permute(0, 4, 1, 2, 3).float().contiguous()

    parts = {}

    def step():
        t0 = time.perf_counter()
        optimizer.zero_grad()
        logits = model(x)
        t1 = time.perf_counter()
        loss = soft_dice_loss(logits, target)
        t2 = time.perf_counter()
        loss.backward()
        t3 = time.perf_counter()
        optimizer.step()
        t4 = time.perf_counter()
        parts.update(forward=t1 - t0, loss=t2 - t1, backward=t3 - t2, adam=t4 - t3)

    seconds, cpu_seconds = best(max(1, repeats - 1), step)
    parameters = sum(p.numel() for p in model.parameters())
    print(f"UNet3D f={features}, batch {batch}, {size}^3 crops, 2 classes, {threads} thread(s): "
          f"{seconds:.2f} s per training step wall, {cpu_seconds:.2f} s CPU (last: forward {parts['forward']:.2f}, "
          f"loss {parts['loss']:.2f}, backward {parts['backward']:.2f}, Adam {parts['adam']:.2f}); "
          f"parameters {parameters}", flush=True)
    bench_line("unet_train_step", threads, seconds=seconds, cpu_seconds=cpu_seconds, peak_rss_mib=peak_rss_mib())
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", default="1,2")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--skip-unet", action="store_true")
    parser.add_argument("--unet-size", type=int, default=64)
    parser.add_argument("--unet-batch", type=int, default=2)
    parser.add_argument("--features", type=int, default=32)
    args = parser.parse_args()
    thread_counts = [int(t) for t in args.threads.split(",") if t]

    load = open("/proc/loadavg").read().split()[:3] if os.path.exists("/proc/loadavg") else ["?"]
    print(f"bench-torch: PyTorch {torch.__version__}, mkldnn {torch.backends.mkldnn.is_available()}, "
          f"{os.cpu_count()} cores visible; load average at start: {' '.join(load)}")
    print("conv3d k=3 pad 1 stride 1, batch 2 (GFLOP/s; forward = 2*N*Cout*Cin*27*voxels, forward+backward = 3x "
          "that with input and weight gradients)")
    for threads in thread_counts:
        torch.set_num_threads(threads)
        conv_figures(threads, args.repeats)
    if not args.skip_unet:
        for threads in thread_counts:
            torch.set_num_threads(threads)
            unet_step_seconds(threads, args.repeats, args.unet_size, args.unet_batch, args.features)
    print(f"peak RSS: {peak_rss_mib():.0f} MiB")


if __name__ == "__main__":
    main()
