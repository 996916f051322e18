"""Regenerates the ONNX export fixtures in tests/data/ (run by hand; tests only read the files).

    python tests/data/make_exports.py            # needs torch, onnxscript (dynamo export), safetensors

Tiny models with seeded random weights, exported the way people really export them, so the
converter is tested on what PyTorch's exporters write rather than on hand-made graphs:

| file | what it exercises |
| --- | --- |
| mlp.onnx | Linear/ReLU/GELU (exported as its Erf decomposition)/Softmax: Gemm, dynamic batch |
| cnn_bn.onnx | Conv-BN-ReLU x2, MaxPool, x.view(x.size(0), -1) -> Linear, BatchNorm1d head; TorchScript exporter without constant folding, so BatchNormalization nodes and the Shape/Gather/Unsqueeze/Concat/Reshape flatten chain are in the file |
| cnn_bn_dynamo.onnx | the same CNN (same weights) through the dynamo exporter (torch.export, opset 18) |
| mobilenet_block.onnx | stem conv + Hardswish, inverted residual blocks (1x1 expand, depthwise 3x3, ReLU6 as Clip, 1x1 project, residual Add), squeeze-excite (GlobalAveragePool, 1x1 convs or flatten+Linear+view, Hardsigmoid, Mul), opset 17 |
| resize_pad_split.onnx | F.pad / ConstantPad2d / reflect pad, torch.split (uneven) + chunk + cat, F.interpolate nearest x2, bilinear align_corners False/True, size=, squeeze/unsqueeze |
| no_params.onnx + no_params.npz + no_params.safetensors | export_params=False: the weights are graph inputs, bound from a checkpoint (--checkpoint) |
| external_data.onnx + external_data.onnx.data | onnx.save(..., save_as_external_data=True): weights over 1 KB live in the .data file |

All inputs are float32 NCHW with a dynamic batch dim "batch" (except the dynamo export, whose
batch dim is named by torch.export). Each file stays under 150 KB. The script is deterministic:
rerunning it rewrites identical models (up to exporter version changes).
"""

from __future__ import annotations

import os
import warnings

import numpy as np
import onnx
import torch
import torch.nn as nn
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
warnings.filterwarnings("ignore", category=DeprecationWarning)
warnings.filterwarnings("ignore", category=UserWarning)


def seeded(module: nn.Module, seed: int) -> nn.Module:
    """Seeded random weights, with non-trivial BatchNorm statistics; eval mode."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in module.modules():
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                fan_in = m.weight[0].numel()
                m.weight.copy_(torch.randn(m.weight.shape, generator=gen) / fan_in ** 0.5)
                if m.bias is not None:
                    m.bias.copy_(torch.randn(m.bias.shape, generator=gen) * 0.1)
            elif isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d)):
                n = m.num_features
                m.weight.copy_(1 + 0.2 * torch.randn(n, generator=gen))
                m.bias.copy_(0.1 * torch.randn(n, generator=gen))
                m.running_mean.copy_(0.2 * torch.randn(n, generator=gen))
                m.running_var.copy_(0.5 + torch.rand(n, generator=gen))
    return module.eval()


def export(model, x, name, opset=13, dynamic=True, **kwargs):
    path = os.path.join(HERE, name)
    axes = {"input": {0: "batch"}, "output": {0: "batch"}} if dynamic else None
    torch.onnx.export(model, (x,), path, dynamo=False, opset_version=opset,
                      input_names=["input"], output_names=["output"], dynamic_axes=axes,
                      **kwargs)
    onnx.checker.check_model(path)
    return path


# -- models ------------------------------------------------------------------------------------

class MLP(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1 = nn.Linear(48, 96)
        self.fc2 = nn.Linear(96, 64)
        self.fc3 = nn.Linear(64, 10)

    def forward(self, x):
        x = F.relu(self.fc1(x))
        x = F.gelu(self.fc2(x))
        return torch.softmax(self.fc3(x), dim=-1)


class CNNBN(nn.Module):
    """[N,3,16,16] -> Conv-BN-ReLU(8) -> MaxPool -> Conv-BN-ReLU(16) -> MaxPool -> view ->
    Linear(256, 32) -> BatchNorm1d -> ReLU -> Linear(32, 10)."""

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 8, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(8)
        self.conv2 = nn.Conv2d(8, 16, 3, padding=1)
        self.bn2 = nn.BatchNorm2d(16)
        self.pool = nn.MaxPool2d(2)
        self.fc1 = nn.Linear(16 * 4 * 4, 32)
        self.bn3 = nn.BatchNorm1d(32)
        self.fc2 = nn.Linear(32, 10)

    def forward(self, x):
        x = self.pool(F.relu(self.bn1(self.conv1(x))))
        x = self.pool(F.relu(self.bn2(self.conv2(x))))
        x = x.view(x.size(0), -1)
        x = F.relu(self.bn3(self.fc1(x)))
        return self.fc2(x)


class SqueezeExcite(nn.Module):
    def __init__(self, c, r=4, linear=False):
        super().__init__()
        self.linear = linear
        if linear:
            self.fc1, self.fc2 = nn.Linear(c, c // r), nn.Linear(c // r, c)
        else:
            self.fc1, self.fc2 = nn.Conv2d(c, c // r, 1), nn.Conv2d(c // r, c, 1)
        self.pool = nn.AdaptiveAvgPool2d(1)

    def forward(self, x):
        s = self.pool(x)
        if self.linear:
            n, c = x.shape[:2]
            s = s.flatten(1)
            s = F.hardsigmoid(self.fc2(F.relu(self.fc1(s)))).view(n, c, 1, 1)
        else:
            s = F.hardsigmoid(self.fc2(F.relu(self.fc1(s))))
        return x * s


class InvertedResidual(nn.Module):
    def __init__(self, cin, cout, expand, stride, se=None, act=nn.ReLU6):
        super().__init__()
        hidden = cin * expand
        self.use_res = stride == 1 and cin == cout
        layers = [nn.Conv2d(cin, hidden, 1, bias=False), nn.BatchNorm2d(hidden), act(),
                  nn.Conv2d(hidden, hidden, 3, stride, 1, groups=hidden, bias=False),
                  nn.BatchNorm2d(hidden), act()]
        if se is not None:
            layers.append(SqueezeExcite(hidden, linear=se == "linear"))
        layers += [nn.Conv2d(hidden, cout, 1, bias=False), nn.BatchNorm2d(cout)]
        self.block = nn.Sequential(*layers)

    def forward(self, x):
        y = self.block(x)
        return x + y if self.use_res else y


class MobileNetBlocks(nn.Module):
    """[N,3,32,32] -> stem 3x3/2 + Hardswish -> 4 inverted residual blocks (ReLU6 and
    Hardswish, SE via 1x1 convs and via Linear) -> 1x1 conv + Hardswish -> GAP -> Linear."""

    def __init__(self):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 16, 3, 2, 1, bias=False), nn.BatchNorm2d(16),
                                  nn.Hardswish())
        self.blocks = nn.Sequential(
            InvertedResidual(16, 16, 2, 1),
            InvertedResidual(16, 24, 3, 2, se="conv"),
            InvertedResidual(24, 24, 3, 1, se="linear", act=nn.Hardswish),
            InvertedResidual(24, 32, 2, 2, act=nn.Hardswish))
        self.head = nn.Sequential(nn.Conv2d(32, 64, 1), nn.Hardswish(), nn.AdaptiveAvgPool2d(1))
        self.fc = nn.Linear(64, 10)

    def forward(self, x):
        x = self.head(self.blocks(self.stem(x)))
        return self.fc(torch.flatten(x, 1))


class ResizePadSplit(nn.Module):
    """Layout and shape plumbing: pads, split/chunk/cat, the Resize variants, squeeze."""

    def __init__(self):
        super().__init__()
        self.conv_in = nn.Conv2d(4, 12, 3)
        self.pad = nn.ConstantPad2d((1, 2, 0, 1), 0.5)
        self.conv_a = nn.Conv2d(5, 6, 3, padding=1)
        self.conv_b = nn.Conv2d(7, 6, 1)
        self.conv_out = nn.Conv2d(24, 8, 3, padding=1)

    def forward(self, x):                                  # x [N,4,8,8]
        x = self.conv_in(F.pad(x, (1, 1, 1, 1)))          # [N,12,8,8]
        a, b = torch.split(x, [5, 7], dim=1)
        a = F.relu(self.conv_a(a))                         # [N,6,8,8]
        b = self.conv_b(F.pad(b, (1, 1, 1, 1), mode="reflect"))  # [N,6,10,10]
        b = F.interpolate(b, size=(8, 8), mode="bilinear", align_corners=False)
        c = torch.cat([a, b], dim=1)                       # [N,12,8,8]
        c1, c2 = torch.chunk(c, 2, dim=1)
        up = F.interpolate(c1, scale_factor=2, mode="nearest")            # [N,6,16,16]
        up2 = F.interpolate(c2, scale_factor=2, mode="bilinear", align_corners=True)
        y = torch.cat([up, up2, F.interpolate(self.pad(c)[:, :, :16, :16], size=(16, 16),
                                              mode="bilinear", align_corners=False)], dim=1)
        y = self.conv_out(y)                               # [N,8,16,16]
        y = F.max_pool2d(y, 2)                             # [N,8,8,8]
        g = y.mean(dim=(2, 3)).unsqueeze(-1)               # [N,8,1]
        return y + g.unsqueeze(-1).squeeze(2).unsqueeze(2)  # Squeeze/Unsqueeze round trip


class SmallConvNet(nn.Module):
    def __init__(self, width=24):
        super().__init__()
        self.conv1 = nn.Conv2d(1, width, 3, padding=1)
        self.conv2 = nn.Conv2d(width, width, 3, padding=1, groups=width)
        self.conv3 = nn.Conv2d(width, 32, 1)
        self.fc = nn.Linear(32, 10)

    def forward(self, x):
        x = F.relu(self.conv1(x))
        x = F.relu(self.conv3(F.relu(self.conv2(x))))
        x = F.adaptive_avg_pool2d(x, 1).flatten(1)
        return self.fc(x)


# -- exports -----------------------------------------------------------------------------------

def main() -> int:
    torch.manual_seed(0)
    written = []

    written.append(export(seeded(MLP(), 1), torch.zeros(2, 48), "mlp.onnx"))

    cnn = seeded(CNNBN(), 2)
    # do_constant_folding=False keeps BatchNormalization (not fused into Conv by the exporter)
    # and the flatten chain exactly as TorchScript traces it.
    written.append(export(cnn, torch.zeros(1, 3, 16, 16), "cnn_bn.onnx",
                          do_constant_folding=False))

    path = os.path.join(HERE, "cnn_bn_dynamo.onnx")
    batch = torch.export.Dim("batch", min=1, max=64)
    prog = torch.onnx.export(cnn, (torch.zeros(2, 3, 16, 16),), dynamo=True,
                             input_names=["input"], output_names=["output"],
                             dynamic_shapes={"x": {0: batch}}, optimize=True,
                             verbose=False, report=False)
    prog.save(path)
    onnx.checker.check_model(path)
    written.append(path)

    written.append(export(seeded(MobileNetBlocks(), 3), torch.zeros(1, 3, 32, 32),
                          "mobilenet_block.onnx", opset=17))

    written.append(export(seeded(ResizePadSplit(), 4), torch.zeros(1, 4, 8, 8),
                          "resize_pad_split.onnx", opset=13))

    # export_params=False: weights are graph inputs named by their state_dict keys.
    small = seeded(SmallConvNet(), 5)
    path = export(small, torch.zeros(1, 1, 8, 8), "no_params.onnx", export_params=False)
    model = onnx.load(path)
    graph_inputs = {i.name for i in model.graph.input}
    weights = {k: v.detach().numpy().astype(np.float32) for k, v in small.state_dict().items()
               if k in graph_inputs}
    assert len(weights) == len(graph_inputs) - 1, (sorted(graph_inputs), sorted(weights))
    np.savez(os.path.join(HERE, "no_params.npz"), **weights)
    from safetensors.numpy import save_file

    save_file({k: np.ascontiguousarray(v) for k, v in weights.items()},
              os.path.join(HERE, "no_params.safetensors"))
    written += [path, os.path.join(HERE, "no_params.npz"),
                os.path.join(HERE, "no_params.safetensors")]

    # External data: tensors of 1 KB or more go to external_data.onnx.data (onnx's default).
    path = os.path.join(HERE, "external_data.onnx")
    tmp = export(seeded(SmallConvNet(32), 6), torch.zeros(1, 1, 8, 8), "external_data.tmp.onnx")
    model = onnx.load(tmp)
    os.remove(tmp)
    data = os.path.join(HERE, "external_data.onnx.data")
    if os.path.exists(data):
        os.remove(data)
    onnx.save(model, path, save_as_external_data=True, all_tensors_to_one_file=True,
              location="external_data.onnx.data", size_threshold=1024)
    onnx.checker.check_model(path)
    written += [path, data]

    for p in written:
        os.chmod(p, 0o644)                    # onnx/safetensors write some files as 0600
        size = os.path.getsize(p)
        assert size < 150_000, f"{p}: {size} bytes"
        print(f"{os.path.relpath(p, HERE):28s} {size:7d} bytes")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
