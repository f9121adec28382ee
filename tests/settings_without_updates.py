"""The test settings with readings' in-place updates switched off (`tests.switches`)."""

from tests.settings import *  # noqa: F403

INSTALLED_APPS = [*INSTALLED_APPS, "tests.switches.WithoutInPlaceUpdates"]  # noqa: F405
