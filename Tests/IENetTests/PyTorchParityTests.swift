import XCTest
import Foundation
@testable import IENet

/// Compares IENet's UNet3D with an independent PyTorch implementation of InnerEye's module structure (written for
/// this test from the layer facts, not InnerEye's code): our safetensors load with load_state_dict(strict=True),
/// and logits (eval and train mode), parameter gradients and BatchNorm buffers agree. Skipped without torch.
final class PyTorchParityTests: XCTestCase {
    func testMatchesPyTorchImplementation() throws {
        let python = "/usr/bin/python3"
        guard FileManager.default.isExecutableFile(atPath: python), run(python, ["-c", "import torch"]).status == 0 else {
            throw XCTSkip("PyTorch is not installed")
        }
        let net = UNet3D(imageChannels: 2, classes: 3, featureChannels: 4, seed: 7)
        var tensors = net.stateDict()
        var random = TestRandom(8)
        let x = random.tensor([2, 2, 32, 32, 32])
        let evalLogits = net.forward(x, training: false)
        let trainLogits = net.forward(x, training: true)
        let projection = random.tensor(trainLogits.shape)
        net.zeroGrad()
        net.backward(projection)
        tensors.append(NamedTensor(name: "parity/input", shape: x.shape, float32: x.data))
        tensors.append(NamedTensor(name: "parity/projection", shape: projection.shape, float32: projection.data))
        tensors.append(NamedTensor(name: "parity/logits_eval", shape: evalLogits.shape, float32: evalLogits.data))
        tensors.append(NamedTensor(name: "parity/logits_train", shape: trainLogits.shape, float32: trainLogits.data))
        for p in net.parameters { tensors.append(NamedTensor(name: "parity/grad/" + p.name, shape: p.shape, float32: p.grad)) }
        for t in net.stateDict() where t.name.contains("running_") || t.name.hasSuffix("num_batches_tracked") {
            var after = t
            after.name = "parity/after/" + t.name
            tensors.append(after)
        }
        let path = NSTemporaryDirectory() + "ienet-parity-\(getpid()).safetensors"
        try Checkpoint.serialize(tensors: tensors).write(to: URL(fileURLWithPath: path))
        defer { try? FileManager.default.removeItem(atPath: path) }
        let result = run(python, ["-c", Self.script, path])
        XCTAssertEqual(result.status, 0, result.output)
        var errors: [String: Double] = [:]
        for line in result.output.split(separator: "\n") where line.hasPrefix("error ") {
            let parts = line.split(separator: " ")
            errors[String(parts[1])] = Double(parts[2])
        }
        XCTAssertLessThan(errors["logits_eval"] ?? 1, 1e-4, result.output)
        XCTAssertLessThan(errors["logits_train"] ?? 1, 1e-4, result.output)
        XCTAssertLessThan(errors["gradients"] ?? 1, 1e-3, result.output)
        XCTAssertLessThan(errors["buffers"] ?? 1, 1e-4, result.output)
    }

    func run(_ executable: String, _ arguments: [String]) -> (status: Int32, output: String) {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = arguments
        let pipe = Pipe()
        process.standardOutput = pipe
        process.standardError = pipe
        do { try process.run() } catch { return (-1, "\(error)") }
        let data = pipe.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return (process.terminationStatus, String(decoding: data, as: UTF8.self))
    }

    static let script = #"""
import json, struct, sys
import numpy as np
import torch
import torch.nn as nn

def load_safetensors(path):
    b = open(path, 'rb').read()
    n = struct.unpack('<Q', b[:8])[0]
    header = json.loads(b[8:8 + n]); body = b[8 + n:]
    out = {}
    for name, info in header.items():
        if name == '__metadata__':
            continue
        s, e = info['data_offsets']
        dt = {'F32': np.float32, 'I64': np.int64}[info['dtype']]
        out[name] = np.frombuffer(body[s:e], dtype=dt).reshape(info['shape']).copy()
    return out

class Basic(nn.Module):
    def __init__(self, cin, cout, stride=1, bn_act=True):
        super().__init__()
        self.conv1 = nn.Conv3d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm3d(cout) if bn_act else None
    def forward(self, x):
        x = self.conv1(x)
        return torch.relu(self.bn1(x)) if self.bn1 is not None else x

class Enc(nn.Module):
    def __init__(self, cin, cout, stride):
        super().__init__()
        self.block1 = Basic(cin, cout, stride); self.block2 = Basic(cout, cout)
    def forward(self, x):
        x = self.block1(x)
        return self.block2(x) + x

class Dec(nn.Module):
    def __init__(self, cin, cout):
        super().__init__()
        self.upsample_block = nn.Sequential(nn.ConvTranspose3d(cin, cout, 4, 2, 1), nn.BatchNorm3d(cout), nn.ReLU())
    def forward(self, x):
        return self.upsample_block(x)

class Syn(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.conv1 = Basic(c, c, bn_act=False); self.conv2 = Basic(c, c, bn_act=False)
        self.activation_block = nn.Sequential(nn.BatchNorm3d(c), nn.ReLU()); self.block2 = Basic(c, c)
    def forward(self, x, skip):
        x = self.activation_block(self.conv1(x) + self.conv2(skip))
        return self.block2(x) + x

class UNet(nn.Module):
    def __init__(self, cin, f, classes, paths=4):
        super().__init__()
        self.paths = paths
        layers = [Enc(cin, f, 1)]
        c = f
        for _ in range(paths):
            layers.append(Enc(c, 2 * c, 2)); c *= 2
        for _ in range(paths):
            layers.append(Dec(c, c // 2)); layers.append(Syn(c // 2)); c //= 2
        self._layers = nn.ModuleList(layers)
        self.output_layer = nn.Conv3d(c, classes, 1)
    def forward(self, x):
        skips = []
        for i in range(self.paths + 1):
            x = self._layers[i](x)
            if i < self.paths: skips.append(x)
        for j in range(self.paths):
            x = self._layers[self.paths + 1 + 2 * j](x)
            x = self._layers[self.paths + 2 + 2 * j](x, skips.pop())
        return self.output_layer(x)

def rel(a, b):
    a = np.asarray(a, np.float64); b = np.asarray(b, np.float64)
    return float(np.linalg.norm(a - b) / max(np.linalg.norm(b), 1e-12))

def parity(path):
    t = load_safetensors(path)
    torch.set_num_threads(1)
    net = UNet(2, 4, 3)
    state = {k: torch.from_numpy(v) for k, v in t.items() if not k.startswith('parity/')}
    net.load_state_dict(state, strict=True)
    print('parity: load_state_dict(strict=True) accepted', len(state), 'tensors; torch keys', len(net.state_dict()))
    x = torch.from_numpy(t['parity/input'])
    net.eval()
    with torch.no_grad():
        ye = net(x).numpy()
    print('parity: eval logits relative error %.2e' % rel(t['parity/logits_eval'], ye))
    print('error logits_eval %g' % rel(t['parity/logits_eval'], ye))
    net.train()
    yt = net(x)
    print('parity: train logits relative error %.2e' % rel(t['parity/logits_train'], yt.detach().numpy()))
    print('error logits_train %g' % rel(t['parity/logits_train'], yt.detach().numpy()))
    (yt * torch.from_numpy(t['parity/projection'])).sum().backward()
    worst = (0, '')
    scale = max(float(p.grad.abs().max()) for p in net.parameters())
    for name, p in net.named_parameters():
        ours = t['parity/grad/' + name]; theirs = p.grad.numpy()
        if np.linalg.norm(theirs) < 1e-4 * scale * np.sqrt(theirs.size):  # e.g. a bias feeding a BatchNorm: ~0
            err = float(np.abs(ours - theirs).max() / scale)
        else:
            err = rel(ours, theirs)
        worst = max(worst, (err, name))
    print('parity: worst parameter-gradient relative error %.2e (%s)' % worst)
    print('error gradients %g' % worst[0])
    bworst = (0, '')
    for name, v in net.state_dict().items():
        if 'running_' in name or 'num_batches' in name:
            bworst = max(bworst, (rel(t['parity/after/' + name], v.numpy()), name))
    print('parity: worst BatchNorm buffer relative error after the training forward %.2e (%s)' % bworst)
    print('error buffers %g' % bworst[0])


parity(sys.argv[1])
"""#
}
