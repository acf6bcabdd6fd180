#!/usr/bin/env python3
"""Issue 14, figure aal_metrics_116: every AAL region scored with SimpleITK the way InnerEye does it.

The ground truth is MRIcron's AAL atlas (aal.nii.gz, 181x217x181, 1 mm, labels 1..116); the prediction is the
atlas shifted by 2 voxels along x (the fastest axis) and then eroded by one voxel with the 6-neighbourhood (a
voxel keeps its label only when its 6 face neighbours, inside the image, carry the same label). Per region,
InnerEye's calculate_metrics_per_class (InnerEye/ML/metrics.py): binary masks (prediction == L, truth == L) as
uint8 SimpleITK images with the spacing, Dice from LabelOverlapMeasuresImageFilter, HausdorffDistanceImageFilter,
and InnerEye's surface_distance (LabelContour, |SignedMaurerDistanceMap|, zeros added back). One deliberate
difference: the masks are made one class at a time instead of all 117 at once (InnerEye's
binaries_from_multi_label_array would hold 117 whole-image masks, about 0.8 GB, for no speed).

Timed: reading both NIfTI files and scoring all 116 regions (what `ie-bench --aal-metrics` times on our side),
best of --repeats in wall seconds, and the CPU seconds of all threads (the steadier figure on a loaded machine).
Writes <work>/aal_perturbed_sitk.nii.gz and <work>/sitk_values.tsv (label, dice, hd, msd at full precision);
where `ie-bench --aal-metrics` ran before with the same --work, checks that both perturbed copies hold the same
labels and prints the largest differences to our values. Not a test: timings depend on the machine's load.

  /work/venv-torch/bin/python bench/reference/bench_sitk_metrics.py [--threads 1,2] [--repeats 1]
      [--aal /usr/share/mricron/templates/aal.nii.gz] [--work $TMPDIR/ie-bench-aal] [--regions N]
"""
import argparse
import json
import math
import os
import resource
import tempfile
import time

import numpy as np
import SimpleITK as sitk

FIGURE = "aal_metrics_116"


def perturb(labels):
    """Shift by 2 voxels along x (vacated voxels 0), then erode every label by its 6-neighbourhood."""
    shifted = np.zeros_like(labels)
    shifted[:, :, 2:] = labels[:, :, :-2]
    padded = np.pad(shifted, 1, constant_values=0)
    keep = shifted != 0
    for dz, dy, dx in [(-1, 0, 0), (1, 0, 0), (0, -1, 0), (0, 1, 0), (0, 0, -1), (0, 0, 1)]:
        nz, ny, nx = shifted.shape
        neighbour = padded[1 + dz:1 + dz + nz, 1 + dy:1 + dy + ny, 1 + dx:1 + dx + nx]
        keep &= neighbour == shifted
    return np.where(keep, shifted, 0).astype(labels.dtype)


def surface_distance(seg, reference):
    """InnerEye's surface_distance, call for call."""
    statistics = sitk.StatisticsImageFilter()
    reference_surface = sitk.LabelContour(reference)
    statistics.Execute(reference_surface)
    reference_count = int(statistics.GetSum())
    reference_map = sitk.Abs(sitk.SignedMaurerDistanceMap(reference, squaredDistance=False, useImageSpacing=True))
    reference_surface = sitk.LabelContour(reference)
    seg_map = sitk.Abs(sitk.SignedMaurerDistanceMap(seg, squaredDistance=False, useImageSpacing=True))
    seg_surface = sitk.LabelContour(seg)
    seg_to_reference = reference_map * sitk.Cast(seg_surface, sitk.sitkFloat32)
    reference_to_seg = seg_map * sitk.Cast(reference_surface, sitk.sitkFloat32)
    statistics.Execute(seg_surface)
    seg_count = int(statistics.GetSum())

    def with_zeros(count, values):
        nonzero = list(values[values != 0])
        return nonzero + list(np.zeros(count - len(nonzero)))

    distances = (with_zeros(seg_count, sitk.GetArrayViewFromImage(seg_to_reference))
                 + with_zeros(reference_count, sitk.GetArrayViewFromImage(reference_to_seg)))
    return np.mean(distances).item()


def metrics_per_class(prediction, truth, labels, spacing_zyx):
    """InnerEye's calculate_metrics_per_class on a label map, one class at a time: {label: (dice, hd, msd)}."""
    overlap = sitk.LabelOverlapMeasuresImageFilter()
    hausdorff = sitk.HausdorffDistanceImageFilter()
    spacing = sitk.VectorDouble(tuple(float(s) for s in reversed(spacing_zyx)))
    result = {}
    for label in labels:
        p = (prediction == label).astype(np.uint8)
        t = (truth == label).astype(np.uint8)
        p_zero, t_zero = bool(np.all(p == 0)), bool(np.all(t == 0))
        dice = hd = msd = math.nan
        if not (p_zero and t_zero):
            p_image, t_image = sitk.GetImageFromArray(p), sitk.GetImageFromArray(t)
            p_image.SetSpacing(spacing)
            t_image.SetSpacing(spacing)
            overlap.Execute(p_image, t_image)
            dice = overlap.GetDiceCoefficient()
            if p_zero or t_zero:
                hd = msd = math.inf
            else:
                hausdorff.Execute(p_image, t_image)
                hd = hausdorff.GetHausdorffDistance()
                with np.errstate(all="ignore"):
                    msd = surface_distance(p_image, t_image)
        result[label] = (dice, hd, msd)
    return result


def evaluate(prediction_path, truth_path, labels):
    prediction_image, truth_image = sitk.ReadImage(prediction_path), sitk.ReadImage(truth_path)
    prediction = sitk.GetArrayViewFromImage(prediction_image)
    truth = sitk.GetArrayViewFromImage(truth_image)
    spacing_zyx = tuple(reversed(truth_image.GetSpacing()))
    return metrics_per_class(prediction, truth, labels, spacing_zyx)


def read_values(path):
    values = {}
    with open(path) as f:
        for line in f:
            fields = line.split()
            if fields:
                values[int(fields[0])] = tuple(float(v) for v in fields[1:4])
    return values


def max_abs_differences(ours, theirs):
    """Largest |difference| per metric over the labels of both (inf where one is finite and the other not)."""
    worst = [0.0, 0.0, 0.0]
    for label in sorted(set(ours) | set(theirs)):
        if label not in ours or label not in theirs:
            return [math.inf] * 3
        for k in range(3):
            a, b = ours[label][k], theirs[label][k]
            if (math.isnan(a) and math.isnan(b)) or a == b:
                continue
            worst[k] = max(worst[k], abs(a - b) if math.isfinite(a) and math.isfinite(b) else math.inf)
    return worst


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", default="1,2")
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--aal", default="/usr/share/mricron/templates/aal.nii.gz")
    parser.add_argument("--work", default=os.path.join(tempfile.gettempdir(), "ie-bench-aal"))
    parser.add_argument("--regions", type=int, default=None, help="score only the first N regions (quick runs)")
    args = parser.parse_args()
    os.makedirs(args.work, exist_ok=True)

    atlas = sitk.ReadImage(args.aal)
    truth = sitk.GetArrayFromImage(atlas)
    perturbed_image = sitk.GetImageFromArray(perturb(truth))
    perturbed_image.CopyInformation(atlas)
    prediction_path = os.path.join(args.work, "aal_perturbed_sitk.nii.gz")
    sitk.WriteImage(sitk.Cast(perturbed_image, sitk.sitkUInt8), prediction_path, True)
    ours_path = os.path.join(args.work, "aal_perturbed_ie.nii.gz")
    if os.path.exists(ours_path):
        same = np.array_equal(sitk.GetArrayFromImage(sitk.ReadImage(ours_path)), sitk.GetArrayFromImage(perturbed_image))
        print(f"perturbed copies of ie-bench and this script hold the same labels: {same}")
    names = os.path.splitext(args.aal[:-3] if args.aal.endswith(".gz") else args.aal)[0] + ".nii.txt"
    if os.path.exists(names):
        with open(names) as f:
            labels = sorted(int(line.split()[0]) for line in f if line.split())
    else:
        labels = sorted(set(np.unique(truth).tolist()) - {0})
    labels = labels[:args.regions]

    values = {}
    for threads in [int(t) for t in args.threads.split(",")]:
        sitk.ProcessObject.SetGlobalDefaultNumberOfThreads(threads)
        best = best_cpu = math.inf
        for _ in range(max(args.repeats, 1)):
            start, start_cpu = time.perf_counter(), time.process_time()
            values = evaluate(prediction_path, args.aal, labels)
            best, best_cpu = min(best, time.perf_counter() - start), min(best_cpu, time.process_time() - start_cpu)
        record = {"figure": FIGURE, "impl": "sitk", "threads": threads, "precision": "fp32", "seconds": round(best, 4),
                  "cpu_seconds": round(best_cpu, 4),
                  "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
                  "regions": len(labels)}
        ours_values = os.path.join(args.work, "ie_values.tsv")
        if os.path.exists(ours_values):
            diffs = max_abs_differences(read_values(ours_values), values)
            record.update({f"max_abs_diff_{name}": float(f"{d:.3g}") if math.isfinite(d) else None
                           for name, d in zip(["dice", "hd", "msd"], diffs)})
        print(f"SimpleITK as InnerEye, {len(labels)} AAL regions, {threads} thread(s): {best:.2f} s")
        print("BENCH " + json.dumps(record))
    with open(os.path.join(args.work, "sitk_values.tsv"), "w") as f:
        for label in sorted(values):
            f.write(f"{label}\t" + "\t".join(repr(float(v)) for v in values[label]) + "\n")


if __name__ == "__main__":
    main()
