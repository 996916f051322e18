"""Train the digits example model: a small CNN on scikit-learn's 8x8 handwritten digits.

    python examples/digits/train.py        # needs torch and scikit-learn (not needed elsewhere)

Writes, next to this file:
  digits_cnn.onnx   the trained model (TorchScript exporter, opset 13, dynamic batch "batch"),
                    input "image" float32 [batch,1,8,8] NCHW in 0..1, output "logits" [batch,10]
  digits_test.npz   the held-out test split: x float32 [N,1,8,8], y int64 [N]

Seeded and deterministic on CPU; about 10 seconds on 2 cores. run.py converts the model with
Ember and checks it on the test split.
"""

from __future__ import annotations

import os

import numpy as np
import torch
import torch.nn as nn
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split

HERE = os.path.dirname(os.path.abspath(__file__))
SEED = 0


class DigitsCNN(nn.Module):
    """[N,1,8,8] -> Conv-BN-ReLU(16) -> Conv-BN-ReLU(32) -> MaxPool 2 -> Conv-BN-ReLU(48)
    -> MaxPool 2 -> Flatten -> Linear(192, 64) -> ReLU -> Linear(64, 10)."""

    def __init__(self):
        super().__init__()

        def block(cin, cout):
            return [nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU()]

        self.features = nn.Sequential(*block(1, 16), *block(16, 32), nn.MaxPool2d(2),
                                      *block(32, 48), nn.MaxPool2d(2))
        self.classifier = nn.Sequential(nn.Linear(48 * 2 * 2, 64), nn.ReLU(), nn.Dropout(0.2),
                                        nn.Linear(64, 10))

    def forward(self, x):
        x = self.features(x)
        x = x.reshape(x.size(0), -1)       # exported as the Shape/Gather/Concat/Reshape chain
        return self.classifier(x)


def main() -> int:
    torch.manual_seed(SEED)
    torch.set_num_threads(min(2, os.cpu_count() or 1))
    digits = load_digits()
    x = (digits.images / 16.0).astype(np.float32)[:, None]            # [N,1,8,8] in 0..1
    y = digits.target.astype(np.int64)
    x_train, x_test, y_train, y_test = train_test_split(
        x, y, test_size=360, stratify=y, random_state=SEED)

    model = DigitsCNN()
    print(f"parameters: {sum(p.numel() for p in model.parameters())}")
    opt = torch.optim.Adam(model.parameters(), lr=3e-3, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=15)
    xt, yt = torch.from_numpy(x_train), torch.from_numpy(y_train)
    gen = torch.Generator().manual_seed(SEED)
    for epoch in range(15):
        model.train()
        order = torch.randperm(len(xt), generator=gen)
        total = 0.0
        for i in range(0, len(xt), 64):
            idx = order[i:i + 64]
            batch = xt[idx]
            # light augmentation: shift by up to one pixel
            dy, dx = torch.randint(-1, 2, (2,), generator=gen).tolist()
            batch = torch.roll(batch, shifts=(dy, dx), dims=(2, 3))
            loss = nn.functional.cross_entropy(model(batch), yt[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            total += float(loss.detach()) * len(idx)
        sched.step()
        model.eval()
        with torch.no_grad():
            acc = (model(torch.from_numpy(x_test)).argmax(1).numpy() == y_test).mean()
        print(f"epoch {epoch + 1:2d}: train loss {total / len(xt):.4f}, test accuracy {acc:.4f}")

    model.eval()
    with torch.no_grad():
        pred = model(torch.from_numpy(x_test)).argmax(1).numpy()
    print(f"test accuracy: {(pred == y_test).mean():.4f} on {len(y_test)} samples")

    onnx_path = os.path.join(HERE, "digits_cnn.onnx")
    torch.onnx.export(model, (torch.zeros(1, 1, 8, 8),), onnx_path, dynamo=False,
                      opset_version=13, input_names=["image"], output_names=["logits"],
                      dynamic_axes={"image": {0: "batch"}, "logits": {0: "batch"}})
    np.savez_compressed(os.path.join(HERE, "digits_test.npz"), x=x_test, y=y_test)
    print(f"wrote {onnx_path} ({os.path.getsize(onnx_path)} bytes) and digits_test.npz")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
