"""The reference trainer's torch building blocks: model, tokenizers, data, corpus, checkpoints,
ONNX export. Import the submodules directly (``traingate.train.model`` etc.); nothing heavy is
re-exported here.
"""
