"""Every exception the library raises on bad input lives here."""


class KernelPromptsError(Exception):
    """Base class: a user-facing error whose message says what to fix."""


class ManifestError(KernelPromptsError):
    """A seed folder or its manifest is malformed; the message names the file and the field."""


class PromptParseError(KernelPromptsError):
    """A text is not a prompt of the expected shape; the message names the missing section."""


class RegistryError(KernelPromptsError):
    """An unknown GPU or stage, or a live device that does not match its registry entry."""


class RecordError(KernelPromptsError):
    """A measurement record is missing, stale or malformed."""


class DatasetError(KernelPromptsError):
    """A dataset folder fails its integrity check, or a push cannot proceed."""


class NoGpuError(KernelPromptsError):
    """A command that needs a CUDA GPU ran on a machine without one."""
