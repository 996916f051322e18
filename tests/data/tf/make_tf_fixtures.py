"""Writes the TensorFlow fixtures of tests/test_tensorflow_frontend.py (needs TensorFlow; the
tests themselves never import it). Run with a throwaway venv:

    python3 -m venv /tmp/tfvenv && /tmp/tfvenv/bin/pip install tensorflow-cpu==2.21.0
    /tmp/tfvenv/bin/python tests/data/tf/make_tf_fixtures.py

Every fixture has a NAME.npz of inputs ("in/<input name>") and TensorFlow's outputs
("out/<output name>"):
- tf1_graph.pb + tf1_ckpt.index/.data-00000-of-00001: a TF1 graph with ref (VariableV2) and
  resource (VarHandleOp) variables and a Saver checkpoint V2; tf1_frozen.pb / .pbtxt: the same
  graph frozen with convert_variables_to_constants; tf1_saved/: the same as a TF1 SavedModel.
- tf1_partial_ckpt: the TF1 checkpoint without fc/b; partitioned_graph.pb +
  partitioned_ckpt: a variable saved in two slices (both for error tests).
- tf_ops.pb: a graph of constants with the other ops and attribute forms (strided/dilated/
  grouped/explicit-padding convolutions, resize modes, reductions, BatchMatMul, Pack/Unpack,
  SplitV, IdentityN, Fill, Cast, Gather, StridedSlice masks, PlaceholderWithDefault, ...).
- tf2_module/: tf.saved_model.save of a tf.Module (signatures serving_default and embed).
- keras_cnn/, keras_mlp/: Keras models exported with model.export() (TF2 SavedModels).
- keras_mobilenet/: a small MobileNetV2-style Keras model (two inverted-residual blocks: 1x1
  expand + BatchNormalization + ReLU6, 3x3 depthwise stride 1 / 2 + BN + ReLU6, 1x1 project +
  BN, residual Add), random weights and BatchNorm statistics, exported with model.export().

Name generators to write only their fixtures (the default writes them all):

    /tmp/tfvenv/bin/python tests/data/tf/make_tf_fixtures.py keras_mobilenet
"""

import os
import shutil
import sys

import numpy as np
import tensorflow as tf

HERE = os.path.dirname(os.path.abspath(__file__))
tf1 = tf.compat.v1


def _path(name):
    return os.path.join(HERE, name)


def tf1_model():
    rng = np.random.default_rng(0)
    g = tf.Graph()
    with g.as_default():
        x = tf1.placeholder(tf.float32, [None, 12, 12, 3], name="x")
        init = lambda *s: tf1.constant_initializer(rng.standard_normal(s).astype(np.float32) * 0.3)
        w1 = tf1.get_variable("conv1/w", [3, 3, 3, 8], initializer=init(3, 3, 3, 8),
                              use_resource=False)
        b1 = tf1.get_variable("conv1/b", [8], initializer=init(8), use_resource=False)
        y = tf.nn.conv2d(x, w1, strides=[1, 1, 1, 1], padding="SAME")
        y = tf.nn.relu6(tf.nn.bias_add(y, b1))
        y = tf.nn.max_pool2d(y, 3, 2, "SAME")                         # 6x6
        dw = tf1.get_variable("dw/w", [3, 3, 8, 2], initializer=init(3, 3, 8, 2),
                              use_resource=True)
        y = tf.nn.depthwise_conv2d(y, dw, [1, 1, 1, 1], "VALID")      # 4x4x16
        scale = tf1.get_variable("bn/gamma", [16], initializer=init(16), use_resource=True)
        offset = tf1.get_variable("bn/beta", [16], initializer=init(16), use_resource=True)
        mean = tf1.get_variable("bn/mean", [16], initializer=init(16), use_resource=False)
        var = tf1.get_variable("bn/var", [16], initializer=tf1.constant_initializer(
            rng.uniform(0.5, 1.5, 16).astype(np.float32)), use_resource=False)
        y, _, _ = tf1.nn.fused_batch_norm(y, scale, offset, mean, var, epsilon=1e-3,
                                          is_training=False)
        y = tf.nn.elu(y)
        a, b = tf.split(y, 2, axis=3)
        y = tf.concat([tf.nn.leaky_relu(a, 0.2), tf.sigmoid(b) * tf.tanh(b)], axis=3)
        y = tf.pad(y, [[0, 0], [1, 1], [1, 1], [0, 0]], mode="REFLECT")   # 6x6
        y = tf.nn.avg_pool2d(y, 2, 2, "VALID")                             # 3x3
        y = tf1.image.resize_bilinear(y, [6, 6], half_pixel_centers=True)
        y = y[:, 1:5, ::2, :]                                               # 4x3
        y = tf.transpose(y, [0, 2, 1, 3])
        y = tf.maximum(y, -1.0) - tf.minimum(y, 1.0) / 2.0
        y = tf.reshape(y, [tf.shape(y)[0], -1])                             # 4*3*16 = 192
        w2 = tf1.get_variable("fc/w", [192, 10], initializer=init(192, 10), use_resource=False)
        b2 = tf1.get_variable("fc/b", [10], initializer=init(10), use_resource=False)
        logits = tf.add(tf.matmul(y, w2), b2, name="logits")
        probs = tf.nn.softmax(logits, name="probs")
        pooled = tf.reduce_mean(x, axis=[1, 2], name="pooled")
        # training-only parts a frozen graph should drop
        label = tf1.placeholder(tf.float32, [None, 10], name="label")
        loss = tf.reduce_mean(tf.square(probs - label))
        train = tf1.train.GradientDescentOptimizer(0.1).minimize(loss)  # noqa: F841
        saver = tf1.train.Saver([v for v in tf1.global_variables()
                                 if "GradientDescent" not in v.name])
        with tf1.Session(graph=g) as sess:
            sess.run(tf1.global_variables_initializer())
            xs = rng.standard_normal((2, 12, 12, 3)).astype(np.float32)
            out_p, out_l, out_m = sess.run([probs, logits, pooled], {x: xs})
            np.savez(_path("tf1.npz"), **{"in/x": xs, "out/probs": out_p, "out/logits": out_l,
                                          "out/pooled": out_m})
            saver.save(sess, _path("tf1_ckpt"), write_meta_graph=False, write_state=False)
            with open(_path("tf1_graph.pb"), "wb") as f:
                f.write(g.as_graph_def().SerializeToString())
            frozen = tf1.graph_util.convert_variables_to_constants(
                sess, g.as_graph_def(), ["probs", "logits", "pooled"])
            with open(_path("tf1_frozen.pb"), "wb") as f:
                f.write(frozen.SerializeToString())
            tf.io.write_graph(frozen, HERE, "tf1_frozen.pbtxt", as_text=True)
            shutil.rmtree(_path("tf1_saved"), ignore_errors=True)
            builder = tf1.saved_model.Builder(_path("tf1_saved"))
            sig = tf1.saved_model.predict_signature_def({"x": x}, {"probs": probs,
                                                                  "logits": logits})
            builder.add_meta_graph_and_variables(sess, ["serve"],
                                                 signature_def_map={"serving_default": sig},
                                                 saver=saver)
            builder.save()
            # a checkpoint without fc/b (the "missing variable" error)
            partial = tf1.train.Saver([v for v in saver._var_list if "fc/b" not in v.name])
            partial.save(sess, _path("tf1_partial_ckpt"), write_meta_graph=False,
                         write_state=False)


def partitioned_model():
    """A variable split in two partitions: its checkpoint entry is sliced."""
    g = tf.Graph()
    with g.as_default():
        x = tf1.placeholder(tf.float32, [None, 4], name="x")
        w = tf1.get_variable("part/w", [4, 6], partitioner=tf1.fixed_size_partitioner(2),
                             use_resource=False)
        tf.matmul(x, w, name="y")
        saver = tf1.train.Saver()
        with tf1.Session(graph=g) as sess:
            sess.run(tf1.global_variables_initializer())
            saver.save(sess, _path("partitioned_ckpt"), write_meta_graph=False,
                       write_state=False)
            with open(_path("partitioned_graph.pb"), "wb") as f:
                f.write(g.as_graph_def().SerializeToString())


def ops_model():
    """A graph of constants (no variables) exercising the remaining ops and attribute forms."""
    rng = np.random.default_rng(2)
    c = lambda *s: tf.constant(rng.standard_normal(s).astype(np.float32))
    g = tf.Graph()
    with g.as_default():
        x = tf1.placeholder(tf.float32, [None, 8, 8, 4], name="x")
        m = tf1.placeholder(tf.float32, [None, 5, 6], name="m")
        scale = tf1.placeholder_with_default(tf.constant(0.5), [], name="scale")
        y = tf.nn.conv2d(x, c(3, 3, 4, 6), strides=2, padding="SAME", name="conv_s2")
        y2 = tf.nn.conv2d(x, c(3, 3, 4, 6), strides=1, padding="SAME", dilations=2)
        y2 = tf.nn.max_pool2d(y2, 2, 2, "VALID")
        y3 = tf.nn.conv2d(x, c(3, 3, 2, 6), strides=1, padding=[[0, 0], [1, 0], [2, 1], [0, 0]])
        y3 = tf.slice(y3, [0, 1, 2, 0], [-1, 4, 4, -1])                  # grouped conv
        y = tf.nn.relu(y + y2) + tf.nn.selu(tf.slice(y3, [0, 0, 0, 0], [-1, 4, 4, 6])) * scale
        y = tf.pad(y, [[0, 0], [1, 0], [0, 2], [0, 0]], constant_values=1.5)   # 5x6
        up1 = tf1.image.resize_nearest_neighbor(y, [10, 12], half_pixel_centers=True,
                                                name="up1")
        up2 = tf1.image.resize_nearest_neighbor(y, [9, 11], align_corners=True, name="up2")
        up3 = tf1.image.resize_bilinear(y, [9, 11], align_corners=True, name="up3")
        up4 = tf1.image.resize_nearest_neighbor(y, [7, 7], name="up4")
        s = tf.tanh(tf.reduce_sum(up1, axis=[1, 2], keepdims=True)[:, 0, 0, :] / 1000.0
                    + (tf.reduce_max(up2, axis=[1, 2]) - tf.reduce_min(up3, axis=[1, 2])) / 10.0
                    + tf.reduce_mean(up4, axis=[1, 2]))                      # [N, 6]
        s = tf.expand_dims(s, 1)                                            # [N, 1, 6]
        s = tf.squeeze(tf.tile(s, [1, 5, 1])[:, :, None, :], axis=2)        # [N, 5, 6]
        mm = tf.matmul(m, s, adjoint_b=True) * 0.5                          # BatchMatMulV2 [N,5,5]
        mm = tf.math.rsqrt(tf.square(mm) + 1.0) + tf.math.squared_difference(mm, 0.3)
        a, b, c2 = tf.unstack(mm[..., :3], axis=2)                          # 3 x [N, 5]
        st = tf.stack([a, b * 2.0, tf.add_n([a, b, c2])], axis=1)           # [N, 3, 5]
        p, q = tf.split(st, [2, -1], axis=1)
        q = tf.identity_n([q, p])[0]
        z = tf.concat([p, q, tf.zeros_like(q) + tf.fill(tf.shape(q)[1:], 0.25)], axis=-2)
        z = tf.reverse(z, [1]) if False else z[:, ::-1, 1:]                 # negative stride
        z = tf.transpose(z, [0, 2, 1])                                      # [N, 4, 4]
        z = tf.reshape(z, tf.stack([tf.shape(z)[0], tf.constant(-1)]))      # [N, 16]
        z = tf.cast(tf.cast(z * 4.0, tf.int32), tf.float32) / 4.0 + z
        z = tf.gather(z, [3, 1, 4, 1, 5, 9, 2, 6], axis=1)
        logits = tf.matmul(z, c(6, 8), transpose_b=True)
        out = tf.identity(tf.nn.log_softmax(logits) + tf.nn.softmax(logits, axis=-1),
                          name="out")
        out2 = tf.identity(tf.nn.sigmoid(st[:, :, tf.newaxis, 1:4]), name="out2")
        # more ops: Pad, StopGradient, BatchMatMulV3, FusedBatchNorm (v1), unary math, and
        # Range / Prod / Size / Rank / ShapeN folded into a reshape target
        v = tf.stop_gradient(tf.pad(x, [[0, 0], [1, 1], [0, 0], [0, 0]]))       # [N,10,8,4]
        v, _, _ = tf.raw_ops.FusedBatchNorm(
            x=v, scale=tf.constant([1.0, 2.0, 0.5, 1.5]), offset=tf.constant([0.1, 0, 0, -0.2]),
            mean=tf.constant([0.0, 0.1, -0.1, 0.2]), variance=tf.constant([1.0, 0.5, 2.0, 1.5]),
            epsilon=1e-3, is_training=False)[:3]
        v = tf.exp(-tf.abs(v)) + tf.math.log(tf.sqrt(tf.square(v) + 1.0)) + tf.floor(v) * 0.1
        v = tf.nn.softplus(tf.negative(v)) + tf.math.erf(v) - tf.math.reciprocal(tf.abs(v) + 1.0)
        v = tf.nn.avg_pool2d(v, 3, 2, "SAME")                                     # [N,5,4,4]
        n = tf.size(v) // tf.reduce_prod(tf.shape(v)[1:])
        target = tf.concat([[n], tf.range(2, 2 + tf.rank(v) - 3) * 0 + 20, [-1]], axis=0)
        v = tf.reshape(v, target)                                                 # [N,20,4]
        w = tf.constant(rng.standard_normal((4, 3)).astype(np.float32))
        v = tf.raw_ops.BatchMatMulV3(x=v, y=w[None], Tout=tf.float32)            # [N,20,3]
        out3 = tf.identity(v, name="out3")
        xs = rng.standard_normal((2, 8, 8, 4)).astype(np.float32)
        ms = rng.standard_normal((2, 5, 6)).astype(np.float32)
        with tf1.Session(graph=g) as sess:
            o1, o2, o3, *ups = sess.run([out, out2, out3, up1, up2, up3, up4], {x: xs, m: ms})
        arrays = {"in/x": xs, "in/m": ms, "out/out": o1, "out/out2": o2, "out/out3": o3}
        arrays.update({f"out/up{i + 1}": u for i, u in enumerate(ups)})
        np.savez(_path("tf_ops.npz"), **arrays)
        with open(_path("tf_ops.pb"), "wb") as f:
            f.write(g.as_graph_def().SerializeToString())


def tf2_module():
    """tf.saved_model.save of a tf.Module: resource variables read inside a function that
    calls another (nested PartitionedCall), two signatures."""
    rng = np.random.default_rng(3)

    class Block(tf.Module):
        def __init__(self):
            super().__init__()
            self.w = tf.Variable(rng.standard_normal((3, 3, 2, 4)).astype(np.float32))
            self.b = tf.Variable(rng.standard_normal(4).astype(np.float32))
            self.fc = tf.Variable(rng.standard_normal((4, 3)).astype(np.float32))

        @tf.function
        def features(self, x):
            y = tf.nn.conv2d(x, self.w, 1, "SAME") + self.b
            return tf.reduce_mean(tf.nn.relu(y), axis=[1, 2])

        @tf.function(input_signature=[tf.TensorSpec([None, 6, 6, 2], tf.float32)])
        def classify(self, x):
            return {"scores": tf.nn.softmax(tf.matmul(self.features(x), self.fc))}

        @tf.function(input_signature=[tf.TensorSpec([None, 6, 6, 2], tf.float32)])
        def embed(self, x):
            return {"embedding": self.features(x)}

    module = Block()
    shutil.rmtree(_path("tf2_module"), ignore_errors=True)
    tf.saved_model.save(module, _path("tf2_module"),
                        signatures={"serving_default": module.classify, "embed": module.embed})
    fp = os.path.join(_path("tf2_module"), "fingerprint.pb")
    if os.path.exists(fp):
        os.remove(fp)
    p = os.path.join(_path("tf2_module"), "assets")
    if os.path.isdir(p) and not os.listdir(p):
        os.rmdir(p)
    xs = rng.standard_normal((2, 6, 6, 2)).astype(np.float32)
    np.savez(_path("tf2_module.npz"), **{"in/x": xs,
                                         "out/scores": module.classify(xs)["scores"].numpy(),
                                         "out/embedding": module.embed(xs)["embedding"].numpy()})


def keras_models():
    keras = tf.keras
    tf.keras.utils.set_random_seed(1)
    rng = np.random.default_rng(1)
    cnn = keras.Sequential([
        keras.Input((16, 16, 3)),
        keras.layers.Conv2D(8, 3, padding="same"),
        keras.layers.BatchNormalization(),
        keras.layers.ReLU(),
        keras.layers.MaxPooling2D(2),
        keras.layers.DepthwiseConv2D(3, padding="same", use_bias=False),
        keras.layers.BatchNormalization(),
        keras.layers.Activation("relu6"),
        keras.layers.Conv2D(12, 3, strides=2, padding="valid", activation="tanh"),
        keras.layers.UpSampling2D(2, interpolation="nearest"),
        keras.layers.GlobalAveragePooling2D(),
        keras.layers.Dense(5, activation="softmax"),
    ])
    mlp = keras.Sequential([
        keras.Input((20,)),
        keras.layers.Dense(32, activation="relu"),
        keras.layers.Dropout(0.5),
        keras.layers.Dense(16, activation="sigmoid"),
        keras.layers.Dense(4),
    ])
    for name, model, shape in (("keras_cnn", cnn, (2, 16, 16, 3)), ("keras_mlp", mlp, (3, 20))):
        model.compile("adam", "mse")
        # a little training so BatchNorm's moving statistics are not the defaults
        xt = rng.standard_normal((16,) + shape[1:]).astype(np.float32)
        model.fit(xt, model.predict(xt, verbose=0) + 0.1, epochs=2, verbose=0)
        shutil.rmtree(_path(name), ignore_errors=True)
        model.export(_path(name))
        loaded = tf.saved_model.load(_path(name))
        fn = loaded.signatures["serving_default"]
        in_name = list(fn.structured_input_signature[1])[0]
        xs = rng.standard_normal(shape).astype(np.float32)
        outs = fn(**{in_name: tf.constant(xs)})
        arrays = {f"in/{in_name}": xs}
        arrays.update({f"out/{k}": v.numpy() for k, v in outs.items()})
        np.savez(_path(name + ".npz"), **arrays)
        for d in ("assets",):
            p = os.path.join(_path(name), d)
            if os.path.isdir(p) and not os.listdir(p):
                os.rmdir(p)
        fp = os.path.join(_path(name), "fingerprint.pb")
        if os.path.exists(fp):
            os.remove(fp)


def _clean_export(path):
    for d in ("assets",):
        p = os.path.join(path, d)
        if os.path.isdir(p) and not os.listdir(p):
            os.rmdir(p)
    fp = os.path.join(path, "fingerprint.pb")
    if os.path.exists(fp):
        os.remove(fp)


def keras_mobilenet():
    """MobileNetV2-style: two inverted-residual blocks (the first with a stride-2 depthwise
    convolution, the second stride 1 with a residual Add), global average pooling, Dense
    softmax. Random weights; every BatchNormalization gets random gamma/beta and random moving
    mean / positive variance. (Two blocks only: each variable costs about 6 KB of
    saved_model.pb, and the fixture stays under 300 KB.)"""
    keras = tf.keras
    layers = keras.layers
    tf.keras.utils.set_random_seed(4)
    rng = np.random.default_rng(4)

    def bn_relu6(y, relu=True):
        y = layers.BatchNormalization(epsilon=1e-3)(y)
        return layers.ReLU(6.0)(y) if relu else y

    def block(x, expand, out, stride):
        y = bn_relu6(layers.Conv2D(expand, 1, use_bias=False)(x))
        y = bn_relu6(layers.DepthwiseConv2D(3, strides=stride, padding="same",
                                            use_bias=False)(y))
        y = bn_relu6(layers.Conv2D(out, 1, use_bias=False)(y), relu=False)
        if stride == 1 and x.shape[-1] == out:
            y = layers.Add()([x, y])
        return y

    inp = keras.Input((32, 32, 3))
    x = block(inp, 16, 8, 2)                     # 16x16x8
    x = block(x, 24, 8, 1)                       # residual
    x = layers.GlobalAveragePooling2D()(x)
    out = layers.Dense(10, activation="softmax")(x)
    model = keras.Model(inp, out)
    for layer in model.layers:
        if isinstance(layer, layers.BatchNormalization):
            n = layer.gamma.shape[0]
            layer.set_weights([rng.uniform(0.5, 1.5, n).astype(np.float32),
                               (rng.standard_normal(n) * 0.2).astype(np.float32),
                               (rng.standard_normal(n) * 0.3).astype(np.float32),
                               rng.uniform(0.5, 2.0, n).astype(np.float32)])
        elif isinstance(layer, (layers.Conv2D, layers.DepthwiseConv2D)):
            # larger than Keras' initial scale: activations reach ReLU6's upper clip too
            layer.set_weights([w * 2.0 for w in layer.get_weights()])
    name = "keras_mobilenet"
    shutil.rmtree(_path(name), ignore_errors=True)
    model.export(_path(name))
    _clean_export(_path(name))
    loaded = tf.saved_model.load(_path(name))
    fn = loaded.signatures["serving_default"]
    in_name = list(fn.structured_input_signature[1])[0]
    # noise on a different smooth pattern and colour offset per image: the outputs differ
    yy, xx = np.meshgrid(np.linspace(-1, 1, 32), np.linspace(-1, 1, 32), indexing="ij")
    pattern = np.stack([np.sin(3 * xx + 2 * k) * np.cos(2 * yy - k) for k in range(6)], -1)
    xs = (rng.standard_normal((2, 32, 32, 3)) * 0.5 + rng.uniform(-1, 1, (2, 1, 1, 3))
          + 1.5 * pattern.reshape(32, 32, 2, 3).transpose(2, 0, 1, 3)).astype(np.float32)
    outs = fn(**{in_name: tf.constant(xs)})
    arrays = {f"in/{in_name}": xs}
    arrays.update({f"out/{k}": v.numpy() for k, v in outs.items()})
    np.savez(_path(name + ".npz"), **arrays)


GENERATORS = {f.__name__: f for f in (tf1_model, partitioned_model, ops_model, tf2_module,
                                      keras_models, keras_mobilenet)}


if __name__ == "__main__":
    unknown = [a for a in sys.argv[1:] if a not in GENERATORS]
    if unknown:
        sys.exit(f"unknown generator(s) {', '.join(unknown)}; choose from "
                 f"{', '.join(GENERATORS)}")
    for gen in sys.argv[1:] or GENERATORS:
        GENERATORS[gen]()
    for root, _, files in os.walk(HERE):
        for f in sorted(files):
            p = os.path.join(root, f)
            print(f"{os.path.relpath(p, HERE)}: {os.path.getsize(p)} bytes")
