"""InnerEye's UNet3D (InnerEye/ML/models/architectures/unet_3d.py) written out in plain PyTorch, for reference use.

Reference only: the toolbox itself never imports this. It exists so that the parity tests and the speed
comparison can run the same network in PyTorch. The module tree is laid out so that `state_dict()` has exactly
InnerEye's keys (which are also the tensor names of our checkpoints, SPEC 4.4):

    _layers.0 .. _layers.N          encoder blocks (block1, block2: each conv1 [+ bn1])
    _layers.N+1, N+3, ...           decoder blocks (upsample_block.0 = ConvTranspose3d, .1 = BatchNorm3d)
    _layers.N+2, N+4, ...           synthesis blocks (conv1, conv2, activation_block.0, block2)
    output_layer                    1x1x1 Conv3d with bias

Facts taken from InnerEye (zero padding, kernel 3, downsampling factor 2):
- BasicLayer: Conv3d(no bias, padding (k-1)/2) -> BatchNorm3d (optional) -> ReLU (optional); its convs get
  kaiming_normal_(fan_in, relu) and its BatchNorms weight ~ N(1, 0.01), bias 0.
- Encode block: h = block1(x) (stride 2 except at level 0); out = block2(h) + h.
- Decode block: ConvTranspose3d(k = 2*factor = 4, stride 2, padding 1, with bias) -> BatchNorm3d -> ReLU,
  all at PyTorch's default initialisation.
- Synthesis block: a = relu(bn(conv1(x) + conv2(skip))) (convs without BN/activation); out = block2(a) + a;
  the whole block is re-initialised like a BasicLayer (so its BatchNorm also gets N(1, 0.01)).
- Output layer: Conv3d(k=1, bias) at PyTorch's default initialisation; softmax is applied by the loss.
"""
from typing import List, Optional

import torch
from torch import nn


def initialise_like_innereye(module: nn.Module) -> None:
    if isinstance(module, nn.Conv3d):
        nn.init.kaiming_normal_(module.weight, a=0, mode="fan_in", nonlinearity="relu")
        if module.bias is not None:
            nn.init.zeros_(module.bias)
    if isinstance(module, nn.BatchNorm3d):
        nn.init.normal_(module.weight, mean=1.0, std=0.01)
        nn.init.constant_(module.bias, 0.0)


class BasicLayer(nn.Module):
    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, stride: int = 1,
                 batchnorm_and_relu: bool = True):
        super().__init__()
        self.conv1 = nn.Conv3d(in_channels, out_channels, kernel_size, stride=stride,
                               padding=(kernel_size - 1) // 2, bias=False)
        self.bn1: Optional[nn.BatchNorm3d] = nn.BatchNorm3d(out_channels) if batchnorm_and_relu else None
        self.relu = nn.ReLU(inplace=True) if batchnorm_and_relu else None
        self.apply(initialise_like_innereye)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv1(x)
        if self.bn1 is not None:
            x = self.bn1(x)
        if self.relu is not None:
            x = self.relu(x)
        return x


class EncodeBlock(nn.Module):
    concat = False

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, stride: int):
        super().__init__()
        self.block1 = BasicLayer(in_channels, out_channels, kernel_size, stride=stride)
        self.block2 = BasicLayer(out_channels, out_channels, kernel_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.block1(x)
        return self.block2(h) + h


class DecodeBlock(nn.Module):
    concat = False

    def __init__(self, in_channels: int, out_channels: int):
        super().__init__()
        self.upsample_block = nn.Sequential(
            nn.ConvTranspose3d(in_channels, out_channels, kernel_size=4, stride=2, padding=1),
            nn.BatchNorm3d(out_channels),
            nn.ReLU(inplace=True))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.upsample_block(x)


class SynthesisBlock(nn.Module):
    concat = True

    def __init__(self, channels: int, kernel_size: int):
        super().__init__()
        self.conv1 = BasicLayer(channels, channels, kernel_size, batchnorm_and_relu=False)
        self.conv2 = BasicLayer(channels, channels, kernel_size, batchnorm_and_relu=False)
        self.activation_block = nn.Sequential(nn.BatchNorm3d(channels), nn.ReLU(inplace=True))
        self.block2 = BasicLayer(channels, channels, kernel_size)
        self.apply(initialise_like_innereye)

    def forward(self, x: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        a = self.conv1(x) + self.conv2(skip)
        a = self.activation_block(a)
        return self.block2(a) + a


class UNet3D(nn.Module):
    def __init__(self, image_channels: int, feature_channels: int, classes: int, kernel_size: int = 3,
                 downsampling_paths: int = 4):
        super().__init__()
        self.downsampling_paths = downsampling_paths
        self._layers = nn.ModuleList()
        self._layers.append(EncodeBlock(image_channels, feature_channels, kernel_size, stride=1))
        channels = feature_channels
        for _ in range(downsampling_paths):
            self._layers.append(EncodeBlock(channels, channels * 2, kernel_size, stride=2))
            channels *= 2
        for _ in range(downsampling_paths):
            self._layers.append(DecodeBlock(channels, channels // 2))
            self._layers.append(SynthesisBlock(channels // 2, kernel_size))
            channels //= 2
        self.output_layer = nn.Conv3d(channels, classes, kernel_size=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        skips: List[torch.Tensor] = []
        for index, layer in enumerate(self._layers):
            x = layer(x, skips.pop()) if layer.concat else layer(x)
            if index < self.downsampling_paths:
                skips.append(x)
        return self.output_layer(x)


def class_weights_from_counts(counts: torch.Tensor, power: float) -> torch.Tensor:
    """InnerEye's get_class_weights: zero counts count as 1, w = count^-power, scaled to mean 1."""
    counts = torch.where(counts == 0, torch.ones_like(counts), counts)
    weights = counts ** (-power)
    return weights * (weights.shape[0] / weights.sum())


def smooth_target(target: torch.Tensor, eps: float) -> torch.Tensor:
    """InnerEye's label smoothing (SupervisedLearningCriterion): 1 -> 1 - eps, 0 -> eps / (C - 1)."""
    return target * (1.0 - eps) + (1.0 - target) * eps / (target.shape[1] - 1.0)


def soft_dice_loss(logits: torch.Tensor, target: torch.Tensor, eps: float = 1e-10,
                   class_weight_power: Optional[float] = None) -> torch.Tensor:
    """InnerEye's SoftDiceLoss: per crop and class, sums over space with eps added at every voxel, the
    intersection multiplied by the class weights (from the whole batch's target; when the power is set and
    non-zero) after eps, then 1 - 2 * mean over the [batch, class] ratios, background included."""
    p = torch.softmax(logits, dim=1)
    spatial = list(range(2, logits.dim()))
    intersection = torch.sum(p * target + eps, dim=spatial)
    if class_weight_power:
        with torch.no_grad():
            weights = class_weights_from_counts(target.sum(dim=[0, *spatial]), class_weight_power)
        intersection = intersection * weights
    sum_squares = torch.sum(p * p + eps, dim=spatial) + torch.sum(target * target + eps, dim=spatial)
    return 1.0 - 2.0 * torch.mean(intersection / sum_squares)


def cross_entropy_loss(logits: torch.Tensor, target: torch.Tensor, class_weight_power: Optional[float] = None,
                       focal_gamma: Optional[float] = None, smoothing_eps: float = 0.0) -> torch.Tensor:
    """InnerEye's CrossEntropyLoss: per-voxel NLL of log-softmax at argmax(target), weighted by class weights when
    the power is set and non-zero, times focal pixel weights (1 - p_target + 1e-6)^gamma normalised to mean 1 and
    computed without gradient when gamma is set; then the plain mean over voxels. With label smoothing the target
    is smoothed and the loss is -log_p * target, summed over classes with the class weights (mean over voxels)
    or, without class weights, averaged over voxels and classes (InnerEye's torch.mean of the unsummed tensor)."""
    dims = [0, *range(2, logits.dim())]
    if smoothing_eps > 0.0:
        if focal_gamma is not None:
            raise ValueError("Focal loss is supported only for one-hot encoded targets")
        target = smooth_target(target, smoothing_eps)
    weights = None
    if class_weight_power:
        with torch.no_grad():
            weights = class_weights_from_counts(target.sum(dim=dims), class_weight_power)
    log_p = torch.log_softmax(logits, dim=1)
    if smoothing_eps > 0.0:
        loss = -1.0 * log_p * target
        if weights is not None:
            loss = torch.einsum("bc...,c->b...", loss, weights)
        return loss.mean()
    loss = nn.functional.nll_loss(log_p, target.argmax(dim=1), weight=weights, reduction="none")
    if focal_gamma is not None:
        with torch.no_grad():
            pixel = ((1 - torch.softmax(logits, dim=1) + 1e-6) ** focal_gamma * target).sum(dim=1)
            pixel = pixel * (pixel.numel() / (pixel.sum() + 1e-6))
        loss = loss * pixel
    return loss.mean()


def mixture_loss(components, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """InnerEye's MixtureLoss as create_segmentation_loss_function builds it: weights divided by their sum."""
    total = sum(weight for weight, _ in components)
    return sum((weight / total) * loss(logits, target) for weight, loss in components)


def innereye_adam(parameters, lr: float) -> torch.optim.Optimizer:
    """torch.optim.Adam with InnerEye's defaults: adam_betas (0.9, 0.999), opt_eps 1e-4, weight_decay 1e-4."""
    return torch.optim.Adam(parameters, lr=lr, betas=(0.9, 0.999), eps=1e-4, weight_decay=1e-4)
