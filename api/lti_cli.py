"""``cat-engine lti``: register platforms, show the tool's key, and send the scores due
(``lti send-grades``, for cron: it retries what a platform refused or missed)."""

from __future__ import annotations

import json

import click

from storage import session_factory, session_scope


@click.group("lti")
def lti_group() -> None:
    """LTI 1.3: learning platforms that launch tests, and the scores sent back to them."""


@lti_group.group("platforms")
def platforms_group() -> None:
    """The platforms registered to launch this tool."""


@platforms_group.command("add")
@click.option("--name", required=True, help="A name for people (e.g. 'District Moodle').")
@click.option("--issuer", required=True, help="The platform's issuer (iss).")
@click.option("--client-id", required=True, help="The client id the platform gave this tool.")
@click.option("--auth-login-url", required=True, help="The platform's OIDC authorisation URL.")
@click.option("--auth-token-url", required=True, help="The platform's OAuth2 token URL.")
@click.option("--key-set-url", required=True, help="The platform's JWKS URL.")
@click.option("--deployment-id", "deployment_ids", multiple=True, required=True,
              help="A deployment id to accept (repeat for several).")
@click.option("--school-id", type=int, default=None,
              help="The school its users and classes belong to (default: none).")
@click.option("--auth-audience", default=None, help="The token requests' audience, when the "
              "platform wants other than its token URL.")
@click.pass_obj
def platforms_add(settings, name: str, issuer: str, client_id: str, auth_login_url: str,
                  auth_token_url: str, key_set_url: str, deployment_ids: tuple[str, ...],
                  school_id: int | None, auth_audience: str | None) -> None:
    """Register a platform (as a district administrator would)."""
    from evidence import lti as service

    with session_scope(session_factory(settings.engine())) as session:
        platform = service.register_platform(
            session, None, name=name, issuer=issuer, client_id=client_id,
            auth_login_url=auth_login_url, auth_token_url=auth_token_url,
            key_set_url=key_set_url, deployment_ids=list(deployment_ids),
            school_id=school_id, auth_audience=auth_audience)
        service.tool_key(session)
        platform_id = platform.id
    click.echo(f"platform {platform_id} registered: {issuer} (client id {client_id}, "
               f"deployments {', '.join(deployment_ids)})")


@platforms_group.command("list")
@click.pass_obj
def platforms_list(settings) -> None:
    """Print the registered platforms as JSON lines."""
    from sqlalchemy import select

    from evidence import lti as service
    from evidence.lti_models import LtiPlatform

    with session_scope(session_factory(settings.engine())) as session:
        for platform in session.scalars(select(LtiPlatform).order_by(LtiPlatform.id)):
            click.echo(json.dumps(service.platform_view(platform), default=str))


@lti_group.command("key")
@click.option("--new", "rotate", is_flag=True,
              help="Make a new key pair that signs from now on (the old one stays published).")
@click.pass_obj
def key_command(settings, rotate: bool) -> None:
    """Print the tool's key id (making the key pair on first use), and its public key."""
    from evidence import lti as service

    with session_scope(session_factory(settings.engine())) as session:
        key = service.new_tool_key(session) if rotate else service.tool_key(session)
        kid, public = key.kid, key.public_key_pem
    click.echo(f"kid: {kid}")
    click.echo(public.strip())


@lti_group.command("send-grades")
@click.pass_obj
def send_grades(settings) -> None:
    """Send every score that is due to its platform (each once; failures are tried again on
    a later run, 1, 2, 4... minutes apart)."""
    from api.lti_grades import send_due

    report = send_due(session_factory(settings.engine()))
    click.echo(f"{len(report.sent)} score(s) sent, {len(report.retry)} to try again later, "
               f"{len(report.given_up)} given up")
