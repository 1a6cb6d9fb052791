from django import template

from scimsync.sync.selectors import dashboard

register = template.Library()


@register.inclusion_tag("admin/scimsync/dashboard.html", takes_context=True)
def scimsync_dashboard(context):
    request = context["request"]
    if not request.user.has_perm("users.view_user"):
        return {"visible": False}
    return {"visible": True, **dashboard()}
