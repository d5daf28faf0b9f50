"""The shipped TFLite model files and their manifest (installed as ``edge.modelfiles``)."""
