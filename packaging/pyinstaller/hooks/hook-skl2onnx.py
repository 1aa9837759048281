"""skl2onnx registers its converters, shape calculators and parsers by importing its
`operator_converters` and `shape_calculators` packages by name, and reads the ONNX
operator schemas it ships: take all of it, with the onnxconverter-common helpers where
installed (not a dependency of every skl2onnx release). PyInstaller's contrib set has
no skl2onnx hook for this one to override."""
from importlib.util import find_spec

from PyInstaller.utils.hooks import collect_all

datas, binaries, hiddenimports = collect_all("skl2onnx")
if find_spec("onnxconverter_common") is not None:
    _d, _b, _h = collect_all("onnxconverter_common")
    datas += _d
    binaries += _b
    hiddenimports += _h
