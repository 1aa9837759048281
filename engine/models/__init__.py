"""Model files: MLmodel folders wherever they live (modeldir.py), signatures, scikit-learn
-> ONNX conversion and its verification on sample rows, and the ONNX Runtime predictor.
No pickle is loaded on the serving path; only conversion and verification unpickle.

Imports: `cairn.engine.errors` only (and onnx, onnxruntime, skl2onnx, sklearn, lazily).
"""
