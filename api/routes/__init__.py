"""The API's blueprints, one per area; `api.app` registers them in this order."""

from api.routes.awards import blueprint as awards

BLUEPRINTS = [awards]
