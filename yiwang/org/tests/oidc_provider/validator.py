"""The provider's claims: the person's 公民身份号码 and mobile, from ``OIDC_PROVIDER_CLAIMS``."""

import json
import os

from oauth2_provider.oauth2_validators import OAuth2Validator


class ProvinceValidator(OAuth2Validator):
    oidc_claim_scope = {**OAuth2Validator.oidc_claim_scope, "id_number": "profile"}

    def get_additional_claims(self, request):
        people = json.loads(os.environ.get("OIDC_PROVIDER_CLAIMS", "{}"))
        return {"name": request.user.username, **people.get(request.user.username, {})}
