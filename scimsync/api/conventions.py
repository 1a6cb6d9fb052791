"""List conventions shared by every endpoint: page pagination and stable ordering."""

from __future__ import annotations

from rest_framework.filters import OrderingFilter
from rest_framework.pagination import PageNumberPagination


class PagePagination(PageNumberPagination):
    """`?page=N&page_size=M` (at most 200); `count`, `next`, `previous`, `results`."""

    page_size = 50
    page_size_query_param = "page_size"
    max_page_size = 200


class StableOrderingFilter(OrderingFilter):
    """`?ordering=field,-other`, always ending with the primary key.

    Without a unique last key, rows that tie (two users with the same
    at-risk count) can swap between two page queries and one of them is
    then shown twice and the other never.
    """

    def get_ordering(self, request, queryset, view):
        ordering = super().get_ordering(request, queryset, view)
        if not ordering:
            return None  # the view's queryset keeps its own (total) order
        return [*ordering, "pk"] if not {"pk", "-pk", "id", "-id"} & set(ordering) else list(ordering)
