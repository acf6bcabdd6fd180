"""PyTorch side of the parity tests (Tests/IENetTests/PyTorchParityTests.swift). Reference use only.

Every exchange is a safetensors file. Subcommands:

  forward WEIGHTS INPUT OUT
      Strictly loads WEIGHTS (written by our Checkpoint serialisation) into the PyTorch UNet3D, writes to OUT:
      `eval` (logits in eval mode), `train` (logits of one training-mode forward, batch statistics) and the
      BatchNorm running statistics after that forward, under their state_dict names.
  export SEED IMAGE_CHANNELS FEATURES CLASSES INPUT OUT_DIR
      Builds a PyTorch UNet3D from torch.manual_seed(SEED), moves its BatchNorm running statistics away from
      (0, 1) with three training-mode forwards on scaled inputs, and writes OUT_DIR/plain.safetensors
      (safetensors.torch.save_file(state_dict)), OUT_DIR/prefixed.safetensors (keys with a leading `model.`)
      and OUT_DIR/expected.safetensors (`eval`: eval-mode logits on INPUT), and OUT_DIR/keys.txt (the
      state_dict keys in PyTorch's order).
  train-step WEIGHTS INPUT TARGET LR OUT_DIR LOSS...
      For each LOSS, one training step from WEIGHTS: training-mode forward, the loss (InnerEye's definitions) on
      the one-hot TARGET, backward, Adam with InnerEye's defaults at LR. Writes OUT_DIR/<i>.safetensors for the
      i-th LOSS: the updated state_dict, `loss` and `grad/<name>` for every parameter. A LOSS is
      `SoftDice`, `CrossEntropy` or `Focal`, optionally followed by `,power=P` (loss_class_weight_power),
      for Focal `,gamma=G` (focal_loss_gamma, default 1), for CrossEntropy `,smoothing=E` (label_smoothing_eps);
      or `Mixture:W*LOSS+W*LOSS` (weights renormalised to sum 1, as InnerEye).

The input tensor is stored under the name `x`, the target under `y`. `--double` runs PyTorch in float64.
"""
import argparse
import os
import sys

import torch
from safetensors.torch import load_file, save_file

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from unet3d_torch import UNet3D, cross_entropy_loss, innereye_adam, mixture_loss, soft_dice_loss  # noqa: E402


def model_from_state(path: str, dtype: torch.dtype) -> UNet3D:
    state = {k: v for k, v in load_file(path).items() if not k.startswith("optimizer/")}
    image_channels = state["_layers.0.block1.conv1.weight"].shape[1]
    features = state["_layers.0.block1.conv1.weight"].shape[0]
    classes = state["output_layer.weight"].shape[0]
    paths = sum(1 for k in state if k.endswith("block1.conv1.weight")) - 1
    model = UNet3D(image_channels, features, classes, downsampling_paths=paths)
    model.load_state_dict(state, strict=True)  # any missing, unexpected or misshaped key raises
    return model.to(dtype)


def save(tensors: dict, path: str) -> None:
    save_file({k: v.detach().contiguous().cpu() for k, v in tensors.items()}, path)


def running_statistics(model: UNet3D) -> dict:
    return {k: v.clone() for k, v in model.state_dict().items()
            if k.endswith("running_mean") or k.endswith("running_var") or k.endswith("num_batches_tracked")}


def forward(args, dtype: torch.dtype) -> None:
    x = load_file(args.input)["x"].to(dtype)
    model = model_from_state(args.weights, dtype)
    model.eval()
    with torch.no_grad():
        evaluated = model(x)
        model.train()
        trained = model(x)
    out = {"eval": evaluated, "train": trained}
    out.update(running_statistics(model))
    save(out, args.out)


def export(args, dtype: torch.dtype) -> None:
    torch.manual_seed(args.seed)
    # Built and moved in float32 (the dtype of the saved file), so the reference below uses exactly those values.
    model = UNet3D(args.image_channels, args.features, args.classes)
    x = load_file(args.input)["x"]
    model.train()
    with torch.no_grad():
        for scale in (0.5, 2.0, 3.0):
            model(x * scale + 0.25)
    state = {k: v.clone() for k, v in model.state_dict().items()}
    model = model.to(dtype)
    model.eval()
    with torch.no_grad():
        expected = model(x.to(dtype))
    os.makedirs(args.out_dir, exist_ok=True)
    save(state, os.path.join(args.out_dir, "plain.safetensors"))
    save({"model." + k: v for k, v in state.items()}, os.path.join(args.out_dir, "prefixed.safetensors"))
    save({"eval": expected}, os.path.join(args.out_dir, "expected.safetensors"))
    with open(os.path.join(args.out_dir, "keys.txt"), "w") as keys:
        keys.write("\n".join(state.keys()) + "\n")  # state_dict order (safetensors files do not keep it)


def make_single_loss(spec: str):
    name, *options = spec.split(",")
    settings = {k: float(v) for k, v in (o.split("=") for o in options)}
    power = settings.get("power")
    smoothing = settings.get("smoothing", 0.0)
    if name == "SoftDice":
        return lambda logits, target: soft_dice_loss(logits, target, class_weight_power=power)
    if name == "CrossEntropy":
        return lambda logits, target: cross_entropy_loss(logits, target, class_weight_power=power,
                                                         smoothing_eps=smoothing)
    if name == "Focal":
        gamma = settings.get("gamma", 1.0)
        return lambda logits, target: cross_entropy_loss(logits, target, class_weight_power=power, focal_gamma=gamma)
    raise SystemExit(f"unknown loss {spec!r}: expected SoftDice, CrossEntropy or Focal[,power=P][,gamma=G]"
                     "[,smoothing=E], or Mixture:W*LOSS+W*LOSS")


def make_loss(spec: str):
    if spec.startswith("Mixture:"):
        components = []
        for part in spec[len("Mixture:"):].split("+"):
            weight, single = part.split("*", 1)
            components.append((float(weight), make_single_loss(single)))
        return lambda logits, target: mixture_loss(components, logits, target)
    return make_single_loss(spec)


def train_step(args, dtype: torch.dtype) -> None:
    x = load_file(args.input)["x"].to(dtype)
    y = load_file(args.target)["y"].to(dtype)
    os.makedirs(args.out_dir, exist_ok=True)
    for index, spec in enumerate(args.losses):
        loss_function = make_loss(spec)
        model = model_from_state(args.weights, dtype)
        model.train()
        optimizer = innereye_adam(model.parameters(), lr=args.lr)
        optimizer.zero_grad()
        loss = loss_function(model(x), y)
        loss.backward()
        grads = {"grad/" + name: p.grad.clone() for name, p in model.named_parameters()}
        optimizer.step()
        out = dict(model.state_dict())
        out.update(grads)
        out["loss"] = loss.detach().reshape([])
        save(out, os.path.join(args.out_dir, f"{index}.safetensors"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--double", action="store_true", help="compute in float64")
    parser.add_argument("--threads", type=int, default=1)
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("forward")
    p.add_argument("weights"); p.add_argument("input"); p.add_argument("out")
    p = sub.add_parser("export")
    p.add_argument("seed", type=int); p.add_argument("image_channels", type=int)
    p.add_argument("features", type=int); p.add_argument("classes", type=int)
    p.add_argument("input"); p.add_argument("out_dir")
    p = sub.add_parser("train-step")
    p.add_argument("weights"); p.add_argument("input"); p.add_argument("target")
    p.add_argument("lr", type=float); p.add_argument("out_dir"); p.add_argument("losses", nargs="+")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    dtype = torch.float64 if args.double else torch.float32
    {"forward": forward, "export": export, "train-step": train_step}[args.command](args, dtype)


if __name__ == "__main__":
    main()
