"""Invalidate what membership, site and user changes alter, after the transaction commits (the
keys each alters are the catalogue's: `stats.queries`); and the signal by which the admin
announces the edits no dashboard event describes."""

from __future__ import annotations

from django.contrib.auth import get_user_model
from django.db import transaction
from django.db.models.signals import post_delete, post_save, pre_save
from django.dispatch import Signal, receiver

from . import cache, queries, services
from .models import Membership, Organization, Site


def _invalidate_on_commit(keys: list[cache.CacheKey]) -> None:
    transaction.on_commit(lambda: cache.invalidate_keys(keys))


@receiver([post_save, post_delete], sender=Membership)
def membership_changed(sender: type, instance: Membership, **kwargs: object) -> None:
    keys = services.change_keys(queries.MEMBERSHIP, org_id=instance.organization_id)
    _invalidate_on_commit([cache.principal_key(instance.user_id), *keys])


@receiver([post_save, post_delete], sender=Site)
def site_changed(sender: type, instance: Site, **kwargs: object) -> None:
    _invalidate_on_commit(list(services.change_keys(queries.SITE, org_id=instance.organization_id)))


@receiver([post_save, post_delete], sender=get_user_model())
def user_changed(sender: type, instance: object, **kwargs: object) -> None:
    _invalidate_on_commit([cache.principal_key(instance.pk)])


@receiver(pre_save, sender=Organization)
def organization_saving(sender: type, instance: Organization, **kwargs: object) -> None:
    """A rotated webhook secret: its old digest must stop finding the organization at once."""
    old = Organization.objects.filter(pk=instance.pk).values_list("webhook_secret_sha256", flat=True).first()
    instance._previous_secret_digest = old  # read by organization_changed


@receiver([post_save, post_delete], sender=Organization)
def organization_changed(sender: type, instance: Organization, **kwargs: object) -> None:
    digests = {getattr(instance, "_previous_secret_digest", None), instance.webhook_secret_sha256} - {None, ""}
    _invalidate_on_commit([cache.webhook_key(digest) for digest in digests])


organization_edited = Signal()
"""Sent with `org_ids` once an edit made outside the event path has committed (the admin's
forms and deletions): units, devices, sites, readings or alerts changed in a way no dashboard
event describes. `realtime` answers it with an `orgChanged` event."""
