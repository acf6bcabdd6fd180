#!/usr/bin/env python3
"""`make bench`: every speed figure of ie-bench beside its peer measured in the same run, as a ratio.

Runs, one after the other on this machine (standard library only; the peers run in their own venv):
  1. the sgemm peak: `ie-bench --sgemm-only` once per OpenBLAS kernel set this CPU can run (OPENBLAS_CORETYPE is
     read when the library loads: as set in the environment, auto-detected, and the AVX-512 sets where the CPU
     has AVX-512) plus oneDNN's JIT sgemm; the best is the peak the conv rows are measured against, and our own
     figures then run with the best OpenBLAS kernels; where the CPU has AVX512_BF16 also oneDNN's bf16 matmul,
     the peak the bf16 conv rows are measured against;
  2. each section of ie-bench in its own process per thread count (so that its peak memory is its own), each
     followed by the peer's run of the same configuration where `make bench-torch` installed the peers
     (PEER_PYTHON, default .venv-torch/bin/python3; side by side because the VM's speed drifts):
       engine     conv layers and the UNet3D training step (fp32, bf16)   PyTorch    bench_torch.py
       inference  sliding-window inference of UNet3D f=32 (fp32, bf16)  MONAI      bench_monai.py
       aal        Dice/Hausdorff/MSD of the 116 AAL regions             SimpleITK  bench_sitk_metrics.py
       loader     time the training thread waits for data (prefetch on/off; no peer)
Every program prints its figures as `BENCH {json}` lines, paired here by (figure, threads, precision).
The raw output of each program goes to standard error so that a ratio table is all that standard output holds.

    bench/run_bench.py [--threads 1,2] [--repeats 3] [--sections sgemm,engine,inference,aal,loader]
                       [--ie-bench PATH] [--peer-python PATH] [--skip-peers] [--ie-args "..."]
"""
import argparse
import json
import os
import shlex
import shutil
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# Which peer each of our figures is compared with: (figure prefix, peer impl). Conv figures also get the sgemm peak
# and the sgemm timed beside them. The conv layers inside our training step (conv_layers_unet_train_step) have no
# peer figure: PyTorch's step is compared whole (unet_train_step).
PEERS = [("conv_", "torch"), ("unet_train_step", "torch"), ("sliding_window_", "monai"), ("aal_metrics_", "sitk")]
NO_PEER = ("conv_layers_",)


def run(command, env=None, label=""):
    """Runs a benchmark program; returns its BENCH records. Its lines are echoed to stderr as they come."""
    print(f"== {label or ' '.join(command)}", file=sys.stderr, flush=True)
    records = []
    try:
        process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env,
                                   cwd=ROOT)
    except OSError as error:
        print(f"   cannot run: {error}", file=sys.stderr)
        return records
    for line in process.stdout:
        print("   " + line.rstrip(), file=sys.stderr, flush=True)
        if line.startswith("BENCH "):
            try:
                records.append(json.loads(line[6:]))
            except json.JSONDecodeError:
                print(f"   (unreadable BENCH line skipped)", file=sys.stderr)
    status = process.wait()
    if status != 0:
        print(f"   exited with status {status} (its figures so far are kept)", file=sys.stderr)
    return records


def cpu_flags():
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("flags"):
                return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


def sgemm_peak(ie_bench, threads, repeats):
    """Best sgemm per thread count over the kernel sets this CPU can run, and the OpenBLAS core type that won."""
    flags = cpu_flags()
    candidates = [("as set", None)]
    if os.environ.get("OPENBLAS_CORETYPE"):
        candidates.append(("auto-detected", ""))
    if "avx512f" in flags:
        candidates.append(("SkylakeX", "SkylakeX"))
    if "avx512_bf16" in flags:
        candidates.append(("Cooperlake", "Cooperlake"))
    records, best_core = [], {}
    for label, core in candidates:
        env = dict(os.environ)
        if core == "":
            env.pop("OPENBLAS_CORETYPE", None)
        elif core:
            env["OPENBLAS_CORETYPE"] = core
        found = run([ie_bench, "--sgemm-only", "--threads", threads, "--repeats", str(repeats)], env,
                    f"sgemm peak, OPENBLAS_CORETYPE {label}")
        for record in found:
            record["coretype"] = core
            if record.get("impl") == "openblas":
                previous = best_core.get(record["threads"])
                if previous is None or record["gflops"] > previous[0]:
                    best_core[record["threads"]] = (record["gflops"], core)
        records += found
    peak, bf16_peak = {}, {}
    for record in records:
        chosen_peak = bf16_peak if record.get("precision") == "bf16" else peak
        key = record["threads"]
        if key not in chosen_peak or record["gflops"] > chosen_peak[key]["gflops"]:
            chosen_peak[key] = record
    winners = [core for _, core in best_core.values()]
    chosen = max(set(winners), key=winners.count) if winners else None
    return records, peak, bf16_peak, chosen


def fmt_value(record):
    if "gflops" in record:
        return f"{record['gflops']:.1f} GFLOP/s"
    if "seconds" in record:
        memory = f", {record['peak_rss_mib']:.0f} MiB" if "peak_rss_mib" in record else ""
        return f"{record['seconds']:.3g} s{memory}"
    return json.dumps({k: v for k, v in record.items() if k not in ("figure", "impl", "threads", "precision")})


def comparison(ours, peer):
    """'x faster' (peer time / our time, or our rate / peer rate) and the memory ratio where both have one."""
    if "gflops" in ours and "gflops" in peer:
        text = f"{ours['gflops'] / peer['gflops']:.2f}x its rate"
    elif "seconds" in ours and "seconds" in peer:
        text = f"{ours['seconds'] / peer['seconds']:.3g}x its time ({peer['seconds'] / ours['seconds']:.2f}x as fast)"
    else:
        return "no common measure"
    if "peak_rss_mib" in ours and "peak_rss_mib" in peer:
        text += f", memory {ours['peak_rss_mib'] / peer['peak_rss_mib']:.2f}x"
    return text


def table(ours_records, peer_records, peak, bf16_peak):
    peers = {}
    for record in peer_records:
        peers[(record["figure"], record["impl"], record["threads"], record.get("precision", "fp32"))] = record
    print(f"{'figure':34} {'thr':>3} {'prec':4}  {'ours':24}  peer and ratio")
    print("-" * 110)
    for threads, record in sorted(peak.items()):
        print(f"{'sgemm peak (best kernels)':34} {threads:>3} {'fp32':4}  {fmt_value(record):24}  "
              f"{record['impl']} {record.get('kernels', '')}")
    for threads, record in sorted(bf16_peak.items()):
        ratio = f"; {record['gflops'] / peak[threads]['gflops']:.2f}x the fp32 sgemm peak" if threads in peak else ""
        print(f"{'bf16 matmul peak':34} {threads:>3} {'bf16':4}  {fmt_value(record):24}  "
              f"{record['impl']} {record.get('kernels', '')}{ratio}")
    for record in ours_records:
        figure, threads, precision = record["figure"], record["threads"], record.get("precision", "fp32")
        notes = []
        if figure.startswith("conv_") and threads in peak and "gflops" in record:
            notes.append(f"{100 * record['gflops'] / peak[threads]['gflops']:.0f}% of sgemm peak")
        if figure.startswith("conv_") and precision == "bf16" and threads in bf16_peak and "gflops" in record:
            notes.append(f"{100 * record['gflops'] / bf16_peak[threads]['gflops']:.0f}% of bf16 matmul peak")
        if figure.startswith("conv_") and "sgemm_beside_gflops" in record and "gflops" in record:
            notes.append(f"{100 * record['gflops'] / record['sgemm_beside_gflops']:.0f}% of the sgemm timed beside it "
                         f"({record['sgemm_beside_gflops']:.1f})")
        if "forward_gflops" in record and "backward_gflops" in record:
            notes.append(f"forward {record['forward_gflops']:.1f}, backward {record['backward_gflops']:.1f} GFLOP/s")
        for prefix, impl in PEERS:
            if not figure.startswith(prefix) or figure.startswith(NO_PEER):
                continue
            peer = peers.get((figure, impl, threads, precision)) or peers.get((figure, impl, threads, "fp32"))
            if peer:
                notes.append(f"{impl} {peer.get('precision', 'fp32')} {fmt_value(peer)}: {comparison(record, peer)}")
                if peer.get("precision", "fp32") == precision:  # the peer's differences are to our run of its precision
                    record = {**{k: v for k, v in peer.items() if k.startswith("max_abs_diff")}, **record}
            else:
                notes.append(f"{impl}: not measured")
        extra = ", ".join(f"{k} {v}" for k, v in sorted(record.items())
                          if k.startswith("max_abs_diff") or k in ("prefetch", "mode", "model"))
        if extra:
            notes.append(extra)
        shown = figure + (f" [{record['backend']}]" if "backend" in record else "")
        print(f"{shown:34} {threads:>3} {precision:4}  {fmt_value(record):24}  {'; '.join(notes)}")


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", default="1,2")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--sections", default="sgemm,engine,inference,aal,loader")
    parser.add_argument("--ie-bench", default=os.path.join(ROOT, ".build", "release", "ie-bench"))
    parser.add_argument("--peer-python", default=os.environ.get("PEER_PYTHON",
                                                                os.path.join(ROOT, ".venv-torch", "bin", "python3")))
    parser.add_argument("--skip-peers", action="store_true")
    parser.add_argument("--ie-args", default="", help="extra ie-bench arguments, e.g. \"--skip-conv\"")
    args = parser.parse_args()
    if not os.access(args.ie_bench, os.X_OK):
        sys.exit(f"run_bench: {args.ie_bench} not found: build it with `swift build -c release` (make bench does)")
    load = open("/proc/loadavg").read().split()[:3] if os.path.exists("/proc/loadavg") else ["?"]
    print(f"make bench: {os.cpu_count()} cores visible, load average at start {' '.join(load)}; best of "
          f"{args.repeats}; raw output on standard error")

    sections = args.sections.split(",")
    peak, bf16_peak, coretype = {}, {}, None
    if "sgemm" in sections:
        _, peak, bf16_peak, coretype = sgemm_peak(args.ie_bench, args.threads, args.repeats)
    env = dict(os.environ)
    if coretype == "":
        env.pop("OPENBLAS_CORETYPE", None)
    elif coretype:
        env["OPENBLAS_CORETYPE"] = coretype
    peers = not args.skip_peers and os.access(args.peer_python, os.X_OK)
    if args.skip_peers:
        print("peers skipped (--skip-peers)")
    elif not peers:
        print(f"peers not installed ({args.peer_python} missing): `make bench-torch` installs PyTorch, MONAI and "
              f"SimpleITK into .venv-torch")
    reference = os.path.join(ROOT, "bench", "reference")
    work = tempfile.mkdtemp(prefix="ie-bench-")
    common = ["--repeats", str(args.repeats)]
    ours, peer_records = [], []
    label = f"OPENBLAS_CORETYPE={env.get('OPENBLAS_CORETYPE', '(unset)')}"
    try:
        # Ours and the peer's run of each configuration follow each other: this VM's speed drifts by 10-25 %
        # within minutes (measured), which would skew a ratio of figures taken a section apart.
        if "engine" in sections:
            for threads in args.threads.split(","):
                ours += run([args.ie_bench, "--threads", threads, "--skip-inference"] + common
                            + shlex.split(args.ie_args), env,
                            f"ie-bench, {threads} thread(s), {label}")
                if peers:
                    peer_records += run([args.peer_python, os.path.join(reference, "bench_torch.py"), "--threads",
                                         threads] + common, None, f"PyTorch: bench_torch.py, {threads} thread(s)")
        if "inference" in sections:
            directory = os.path.join(work, "inference")
            for mode in ("constant", "gaussian"):
                for threads in args.threads.split(","):
                    ours += run([args.ie_bench, "--inference", "--threads", threads, "--inference-modes", mode,
                                 "--inference-dir", directory] + common, env,
                                f"ie-bench --inference, {mode}, {threads} thread(s), {label}")
                    if peers:  # after ours: it reports max_abs_diff against the posteriors ours wrote
                        peer_records += run([args.peer_python, os.path.join(reference, "bench_monai.py"), "--threads",
                                             threads, "--modes", mode, "--dir", directory, "--ie-bench",
                                             args.ie_bench] + common, None,
                                            f"MONAI: bench_monai.py, {mode}, {threads} thread(s)")
        if "aal" in sections:
            directory = os.path.join(work, "aal")
            ours += run([args.ie_bench, "--aal-metrics", "--threads", args.threads, "--work", directory] + common,
                        env, "ie-bench --aal-metrics")
            if peers:  # SimpleITK needs minutes per thread count: one timing each
                peer_records += run([args.peer_python, os.path.join(reference, "bench_sitk_metrics.py"), "--threads",
                                     args.threads, "--repeats", "1", "--work", directory], None,
                                    "SimpleITK: bench_sitk_metrics.py")
        if "loader" in sections:
            ours += run([args.ie_bench, "--loader", "--threads", args.threads] + common, env, "ie-bench --loader")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print()
    table([r for r in ours if r.get("impl") == "ie"], peer_records, peak, bf16_peak)


if __name__ == "__main__":
    main()
