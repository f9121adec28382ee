"""What The Things Network sends, read: the uplink envelope, the device-model catalogue, and which
value of a decoded payload is the product temperature (docs/sensors.md)."""

from .envelope import Envelope, EnvelopeError, parse_envelope
from .extract import Extraction, Override, Reading, extract

__all__ = ["Envelope", "EnvelopeError", "Extraction", "Override", "Reading", "extract", "parse_envelope"]
