"""Huibao's dashboard for city staff: one page over the rollup query API.

The rollup service mounts it with::

    app.include_router(huibao_dashboard.router(settings.scheduler_url))

and it is then served at `/ui/`. The page (HTML, JavaScript modules, CSS, all local: no
CDN, no build step) calls the rollup API with relative URLs and the scheduler's quarterly
feedback through `GET /ui/api/feedback/{id}?quarter=`, a small proxy that forwards the
caller's bearer token.
"""

from huibao_dashboard.routes import router

__all__ = ["router"]
