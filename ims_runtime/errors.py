"""Error taxonomy: every failure the service can report has a code, a kind and a recoverable flag.

Codes are grouped by kind (spec, model, backend, source, publish, output) so that logs, telemetry and exit codes
say *what* failed without parsing messages. ``recoverable`` marks failures that can go away by themselves (a
camera that vanished, a backend call that failed once); it is published with the error (``to_dict``) for
subscribers and operators — the service itself does not retry on it: the camera source reconnects on its own
(pipeline/sources.py), everything else stops start-up with a clear line and a non-zero exit.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum


class ErrorKind(str, Enum):
    SPEC = "spec"
    MODEL = "model"
    BACKEND = "backend"
    SOURCE = "source"
    PUBLISH = "publish"
    OUTPUT = "output"
    ENVIRONMENT = "environment"
    INTERNAL = "internal"


@dataclass(frozen=True)
class ErrorCode:
    code: str
    kind: ErrorKind
    recoverable: bool
    exit_code: int


# Exit codes: 2 = the spec (or command line) is wrong, 3 = a model artefact, 4 = a backend,
# 5 = the frame source, 6 = the publisher, 7 = an output file, 8 = the environment (an optional extra not installed, a
# Ray cluster not reachable). 1 is left for unexpected failures (and `fleet-replay`'s regression gate).
SPEC_NOT_FOUND = ErrorCode("SPEC_NOT_FOUND", ErrorKind.SPEC, False, 2)
#: the spec path is a directory, not readable (permissions) or not UTF-8 text
SPEC_UNREADABLE = ErrorCode("SPEC_UNREADABLE", ErrorKind.SPEC, False, 2)
SPEC_YAML_SYNTAX = ErrorCode("SPEC_YAML_SYNTAX", ErrorKind.SPEC, False, 2)
SPEC_INVALID = ErrorCode("SPEC_INVALID", ErrorKind.SPEC, False, 2)
MODEL_NOT_FOUND = ErrorCode("MODEL_NOT_FOUND", ErrorKind.MODEL, False, 3)
#: the model file exists but cannot be read (permissions, a directory)
MODEL_UNREADABLE = ErrorCode("MODEL_UNREADABLE", ErrorKind.MODEL, False, 3)
MODEL_SHA256_MISMATCH = ErrorCode("MODEL_SHA256_MISMATCH", ErrorKind.MODEL, False, 3)
MODEL_CORRUPT = ErrorCode("MODEL_CORRUPT", ErrorKind.MODEL, False, 3)
MODEL_CONTRACT = ErrorCode("MODEL_CONTRACT", ErrorKind.MODEL, False, 3)
MODEL_BUILD_FAILED = ErrorCode("MODEL_BUILD_FAILED", ErrorKind.MODEL, False, 3)
BACKEND_UNAVAILABLE = ErrorCode("BACKEND_UNAVAILABLE", ErrorKind.BACKEND, False, 4)
BACKEND_PLACEMENT = ErrorCode("BACKEND_PLACEMENT", ErrorKind.BACKEND, False, 4)
BACKEND_RUNTIME = ErrorCode("BACKEND_RUNTIME", ErrorKind.BACKEND, True, 4)
SOURCE_NOT_FOUND = ErrorCode("SOURCE_NOT_FOUND", ErrorKind.SOURCE, False, 5)
SOURCE_UNREADABLE = ErrorCode("SOURCE_UNREADABLE", ErrorKind.SOURCE, False, 5)
SOURCE_CAMERA_NOT_PRESENT = ErrorCode("SOURCE_CAMERA_NOT_PRESENT", ErrorKind.SOURCE, True, 5)
PUBLISH_ENDPOINT_IN_USE = ErrorCode("PUBLISH_ENDPOINT_IN_USE", ErrorKind.PUBLISH, False, 6)
PUBLISH_ENDPOINT_INVALID = ErrorCode("PUBLISH_ENDPOINT_INVALID", ErrorKind.PUBLISH, False, 6)
PUBLISH_KEYS = ErrorCode("PUBLISH_KEYS", ErrorKind.PUBLISH, False, 6)
OUTPUT_UNWRITABLE = ErrorCode("OUTPUT_UNWRITABLE", ErrorKind.OUTPUT, False, 7)
EXTRA_NOT_INSTALLED = ErrorCode("EXTRA_NOT_INSTALLED", ErrorKind.ENVIRONMENT, False, 8)
CLUSTER_UNREACHABLE = ErrorCode("CLUSTER_UNREACHABLE", ErrorKind.ENVIRONMENT, True, 8)


class IMSError(Exception):
    """A failure with a code from the taxonomy, a one-line message and a hint on what to do."""

    def __init__(self, code: ErrorCode, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.hint = hint

    @property
    def recoverable(self) -> bool:
        return self.code.recoverable

    def one_line(self) -> str:
        text = f"error[{self.code.code}]: {self.message}"
        if self.hint:
            text += f" — {self.hint}"
        return text

    def to_dict(self) -> dict[str, object]:
        return {
            "code": self.code.code,
            "kind": self.code.kind.value,
            "recoverable": self.code.recoverable,
            "message": self.message,
            "hint": self.hint,
        }
