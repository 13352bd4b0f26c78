"""ONNX: the graph of a harnet network (:mod:`.graph`), its export with checks and metadata and the
``.onnx`` files of a model directory (:mod:`.export`), int8 quantisation (:mod:`.int8`).
Import the modules; this package imports nothing (no onnx at ``import harnet.onnx``).
"""
