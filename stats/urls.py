"""The JSON API: the organizations list, and one URL per query of the catalogue (`stats.queries`)."""

from django.urls import path

from . import queries, views


def _route(query: queries.Query) -> str:
    return f"orgs/<uuid:org_id>/{query.path.replace('{unit}', '<uuid:unit_id>')}"


def _name(query: queries.Query) -> str:
    return f"api-{query.name.replace(':', '-')}"  # a colon would read as a namespace


urlpatterns = [
    path("orgs/", views.organization_list, name="api-orgs"),
    *(path(_route(query), views.query_view(query), name=_name(query)) for query in queries.QUERIES),
]
