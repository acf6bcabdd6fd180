"""MONAI's sliding_window_inference on the network and volume of ie-bench's inference section. Reference use only.

  bench_monai.py [--threads 1,2] [--repeats R] [--dir .build/bench-inference] [--modes constant,gaussian]
                 [--ie-bench .build/release/ie-bench]
      For each mode and thread count, runs `bench_monai.py run` in a fresh process (so each peak RSS is that run's)
      and prints its BENCH line (figure sliding_window_<mode>, impl monai) with max_abs_diff: the largest
      difference between MONAI's posteriors and ours (DIR/ie_<mode>_<threads>.f32, written by ie-bench's run with
      the same threads, else by any of its runs), where ie-bench has run. DIR (weights.safetensors: our network with
      InnerEye's state_dict keys; volume.f32; setup.json) is written by ie-bench; when it is missing this script
      asks `ie-bench --inference-export DIR` for it.
  bench_monai.py run DIR --mode constant|gaussian --threads N [--repeats R]
      One measured configuration: loads the weights strictly into the PyTorch UNet3D of unet3d_torch.py, runs
      sliding_window_inference(x, roi, sw_batch_size, softmax(model(.)), overlap, mode, sigma_scale=0.125,
      padding_mode="constant", cval=0) min(R, 2) times under torch.inference_mode() (as ie-bench does), writes
      the last posteriors to DIR/monai_<mode>_<threads>.f32 and prints one BENCH line (best wall and CPU seconds,
      this process's peak RSS).
"""
import argparse
import json
import os
import resource
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))


def peak_resident_mib() -> float:
    """VmHWM of this process. Not ru_maxrss: a child started with vfork/posix_spawn inherits its parent's
    high-water mark at exec (ie-bench measures the same way)."""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def run(args) -> None:
    import numpy as np
    import torch
    from monai.inferers import sliding_window_inference
    from safetensors.torch import load_file

    torch.set_num_threads(args.threads)
    sys.path.insert(0, HERE)
    from unet3d_torch import UNet3D

    with open(os.path.join(args.dir, "setup.json")) as f:
        setup = json.load(f)
    state = load_file(os.path.join(args.dir, "weights.safetensors"))
    model = UNet3D(image_channels=1, feature_channels=state["_layers.0.block1.conv1.weight"].shape[0],
                   classes=state["output_layer.weight"].shape[0])
    model.load_state_dict(state, strict=True)  # copies: the loaded tensors are dropped below
    model.eval()
    del state
    volume = np.fromfile(os.path.join(args.dir, "volume.f32"), dtype=np.float32).reshape(setup["size"])
    x = torch.from_numpy(volume)[None, None]
    roi = [setup["patch"]] * 3

    def predictor(patches: torch.Tensor) -> torch.Tensor:
        return torch.softmax(model(patches), dim=1)

    best = best_cpu = float("inf")
    out = None
    with torch.inference_mode():
        for _ in range(max(1, min(args.repeats, 2))):
            start, start_cpu = time.perf_counter(), time.process_time()
            out = sliding_window_inference(x, roi, setup["batch"], predictor, overlap=setup["overlap"], mode=args.mode,
                                           sigma_scale=0.125, padding_mode="constant", cval=0.0)
            best = min(best, time.perf_counter() - start)
            best_cpu = min(best_cpu, time.process_time() - start_cpu)
    out[0].numpy().astype(np.float32).tofile(os.path.join(args.dir, f"monai_{args.mode}_{args.threads}.f32"))
    line = {"figure": f"sliding_window_{args.mode}", "impl": "monai", "threads": args.threads, "precision": "fp32",
            "seconds": best, "cpu_seconds": best_cpu,
            "peak_rss_mib": peak_resident_mib(),
            "shape": setup["size"], "patch": setup["patch"], "overlap": setup["overlap"],
            "sw_batch_size": setup["batch"]}
    print("BENCH " + json.dumps(line, sort_keys=True), flush=True)


def max_abs_diff(dir_: str, mode: str, threads: int):
    import glob
    import numpy as np
    ours = os.path.join(dir_, f"ie_{mode}_{threads}.f32")
    if not os.path.exists(ours):
        found = sorted(glob.glob(os.path.join(dir_, f"ie_{mode}_*.f32")))
        if not found:
            return None
        ours = found[0]
    theirs = os.path.join(dir_, f"monai_{mode}_{threads}.f32")
    a, b = np.fromfile(ours, dtype=np.float32), np.fromfile(theirs, dtype=np.float32)
    os.remove(theirs)
    if a.shape != b.shape or os.path.getmtime(ours) < os.path.getmtime(os.path.join(dir_, "setup.json")):
        return None  # written for another setup
    return float(np.abs(a - b).max())


def compare(args) -> None:
    if not os.path.exists(os.path.join(args.dir, "setup.json")):
        subprocess.run([args.ie_bench, "--inference-export", args.dir], check=True)
    for mode in args.modes.split(","):
        for threads in [int(t) for t in args.threads.split(",")]:
            child = subprocess.run([sys.executable, os.path.abspath(__file__), "run", args.dir, "--mode", mode,
                                    "--threads", str(threads), "--repeats", str(args.repeats)],
                                   stdout=subprocess.PIPE, text=True, check=True)
            for text in child.stdout.splitlines():
                if not text.startswith("BENCH "):
                    print(text)
                    continue
                line = json.loads(text[6:])
                diff = max_abs_diff(args.dir, mode, threads)
                if diff is not None:
                    line["max_abs_diff"] = diff
                print("BENCH " + json.dumps(line, sort_keys=True), flush=True)


def main() -> None:
    root = os.path.dirname(os.path.dirname(HERE))
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", default="1,2")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--dir", default=os.path.join(root, ".build", "bench-inference"))
    parser.add_argument("--modes", default="constant,gaussian")
    parser.add_argument("--ie-bench", default=os.path.join(root, ".build", "release", "ie-bench"))
    sub = parser.add_subparsers(dest="command")
    one = sub.add_parser("run")
    one.add_argument("dir")
    one.add_argument("--mode", choices=["constant", "gaussian"], default="constant")
    one.add_argument("--threads", type=int, default=1)
    one.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    run(args) if args.command == "run" else compare(args)


if __name__ == "__main__":
    main()
