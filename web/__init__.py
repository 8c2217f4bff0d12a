"""Dealflow's web service. Prefect must know its server before web.app imports it."""

from dealflow.infra.prefect_api import answer_people_promptly, use_configured_prefect_server

use_configured_prefect_server()
answer_people_promptly()
