"""Run the test OIDC provider: migrate its database, register the client and the people, serve
on a free port of 127.0.0.1 and print ``PORT <n>``. Arguments come from the environment:
``OIDC_PROVIDER_DB``, ``OIDC_PROVIDER_CLAIMS`` (username → claims), ``OIDC_PROVIDER_CLIENT``
(JSON: client_id, client_secret, redirect_uri, password)."""

import json
import os
import socketserver
import sys
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

os.environ["DJANGO_SETTINGS_MODULE"] = "yiwang.org.tests.oidc_provider.settings"

import django

django.setup()

from django.contrib.auth.models import User  # noqa: E402
from django.core.management import call_command  # noqa: E402
from django.core.wsgi import get_wsgi_application  # noqa: E402
from oauth2_provider.models import Application  # noqa: E402


class _Server(socketserver.ThreadingMixIn, WSGIServer):
    daemon_threads = True


class _Quiet(WSGIRequestHandler):
    def log_message(self, *args):
        pass


def main() -> None:
    call_command("migrate", verbosity=0, interactive=False)
    client = json.loads(os.environ["OIDC_PROVIDER_CLIENT"])
    for username in json.loads(os.environ.get("OIDC_PROVIDER_CLAIMS", "{}")):
        User.objects.create_user(username, password=client["password"])
    Application.objects.create(
        name="一网",
        client_id=client["client_id"],
        client_secret=client["client_secret"],
        client_type=Application.CLIENT_CONFIDENTIAL,
        authorization_grant_type=Application.GRANT_AUTHORIZATION_CODE,
        redirect_uris=client["redirect_uri"],
        algorithm=Application.RS256_ALGORITHM,
    )
    server = make_server("127.0.0.1", 0, get_wsgi_application(), server_class=_Server, handler_class=_Quiet)
    print(f"PORT {server.server_port}", flush=True)
    sys.stdout.close()
    server.serve_forever()


if __name__ == "__main__":
    main()
