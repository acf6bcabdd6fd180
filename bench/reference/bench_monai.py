"""MONAI's sliding_window_inference on the network and volume of `ie-bench --inference`. Reference use only.

  bench_monai.py run DIR --mode constant|gaussian --threads N [--repeats R]
      One measured configuration in this (fresh) process: loads DIR/weights.safetensors (written by ie-bench
      from our UNet3D, InnerEye's state_dict keys) strictly into the PyTorch UNet3D of unet3d_torch.py, DIR/volume.f32
      and DIR/setup.json (size, patch, overlap, sw_batch_size), runs
      sliding_window_inference(x, roi, sw_batch_size, softmax(model(.)), overlap, mode, sigma_scale=0.125,
      padding_mode="constant", cval=0) R times under torch.inference_mode(), writes the last posteriors to
      DIR/monai_<mode>.f32 and prints one BENCH line (best seconds, this process's peak RSS).
  bench_monai.py [ARGS...]
      The whole comparison: runs `.build/release/ie-bench --inference ARGS... --monai-python <this python>`
      (ie-bench writes DIR, times ours and this script's `run` in a child process each, and adds max_abs_diff).
"""
import argparse
import json
import os
import resource
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))


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
    model.load_state_dict(state, strict=True)
    model.eval()
    volume = np.fromfile(os.path.join(args.dir, "volume.f32"), dtype=np.float32).reshape(setup["size"])
    x = torch.from_numpy(volume)[None, None]
    roi = [setup["patch"]] * 3

    def predictor(patches: torch.Tensor) -> torch.Tensor:
        return torch.softmax(model(patches), dim=1)

    best = float("inf")
    out = None
    with torch.inference_mode():
        for _ in range(max(1, args.repeats)):
            start = time.perf_counter()
            out = sliding_window_inference(x, roi, setup["batch"], predictor, overlap=setup["overlap"], mode=args.mode,
                                           sigma_scale=0.125, padding_mode="constant", cval=0.0)
            best = min(best, time.perf_counter() - start)
    out[0].numpy().astype(np.float32).tofile(os.path.join(args.dir, f"monai_{args.mode}.f32"))
    line = {"figure": f"sliding_window_{args.mode}", "impl": "monai", "threads": args.threads, "precision": "fp32",
            "seconds": best, "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
            "shape": setup["size"], "patch": setup["patch"], "overlap": setup["overlap"],
            "sw_batch_size": setup["batch"]}
    print("BENCH " + json.dumps(line, sort_keys=True), flush=True)


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "run":
        parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
        parser.add_argument("command")
        parser.add_argument("dir")
        parser.add_argument("--mode", choices=["constant", "gaussian"], default="constant")
        parser.add_argument("--threads", type=int, default=1)
        parser.add_argument("--repeats", type=int, default=2)
        run(parser.parse_args())
        return
    if len(sys.argv) > 1 and sys.argv[1] in ("-h", "--help"):
        print(__doc__)
        return
    bench = os.path.join(HERE, "..", "..", ".build", "release", "ie-bench")
    sys.exit(subprocess.call([bench, "--inference", *sys.argv[1:], "--monai-python", sys.executable]))


if __name__ == "__main__":
    main()
