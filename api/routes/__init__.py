"""The API's blueprints, one per area; `api.app` registers them in this order."""

from api.routes.awards import blueprint as awards
from api.routes.claims import blueprint as claims
from api.routes.entries import blueprint as entries
from api.routes.keys import blueprint as keys
from api.routes.organisation import blueprint as organisation
from api.routes.programmes import blueprint as programmes
from api.routes.rules import blueprint as rules
from api.routes.statements import blueprint as statements

BLUEPRINTS = [awards, claims, entries, statements, programmes, organisation, rules, keys]
