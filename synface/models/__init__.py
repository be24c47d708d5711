"""Face-recognition models: the backbones and their checkpoints (saving, loading, and building a
trained backbone from one). Below both training, which writes checkpoints, and evaluation, which
loads them, so neither layer imports the other for a model."""
