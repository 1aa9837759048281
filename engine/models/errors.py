"""Why a model could not be read, converted, verified or registered. Each is a
CairnError with INVALID_PARAMETER_VALUE (HTTP 400) and a message meant for the user:
registration shows it as the version's status_message."""
from __future__ import annotations

from cairn.engine.errors import INVALID_PARAMETER_VALUE, CairnError


class ModelFormatError(CairnError):
    """A model directory or file is not what its metadata says: missing flavor, file
    or serialization format, untrusted skops types, an unreadable ONNX graph."""

    def __init__(self, message: str):
        super().__init__(message, INVALID_PARAMETER_VALUE)


class ConversionError(CairnError):
    """skl2onnx could not convert a model (the message names the estimator and why)."""

    def __init__(self, message: str):
        super().__init__(message, INVALID_PARAMETER_VALUE)


class VerificationError(CairnError):
    """The ONNX model's outputs differ from the original model's on the sample rows."""

    def __init__(self, message: str):
        super().__init__(message, INVALID_PARAMETER_VALUE)


class RegistrationError(CairnError):
    """A model directory cannot become a registered (ONNX) model version."""

    def __init__(self, message: str):
        super().__init__(message, INVALID_PARAMETER_VALUE)


__all__ = ["ConversionError", "ModelFormatError", "RegistrationError", "VerificationError"]
