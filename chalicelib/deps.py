"""The service's outside systems, built on first use and kept for the life of the container."""

from __future__ import annotations

from functools import cached_property

import logging

from .config import Settings

log = logging.getLogger(__name__)


class Dependencies:
    """Lazily built, reused dependencies: a warm Lambda keeps its connections and clients."""

    def __init__(self, settings: Settings):
        self.settings = settings
        if not settings.posthog_api_key and not any(n == "POSTHOG_API_KEY" for n, _ in settings.ssm_parameters):
            log.info("analytics: off (POSTHOG_API_KEY is not set)")

    @cached_property
    def secrets(self) -> Settings:
        """The settings with secrets fetched from SSM, once per container, on first need."""
        from .config import fetch_ssm_parameters

        return self.settings.with_secrets(fetch_ssm_parameters)

    @cached_property
    def database(self):
        from .db import Database

        return Database(self.secrets.database, timeout=self.settings.db_timeout_seconds)

    @cached_property
    def uploads(self):
        from .repository import Uploads

        return Uploads(self.database)

    @cached_property
    def storage(self):
        from .storage import Storage, s3_client

        s = self.secrets
        client = s3_client(
            endpoint_url=s.r2_endpoint_url,
            access_key_id=s.r2_access_key_id,
            secret_access_key=s.r2_secret_access_key,
            timeout=s.storage_timeout_seconds,
        )
        return Storage(client, s.r2_bucket)

    @cached_property
    def analytics(self):
        from .analytics import build_analytics

        s = self.secrets
        return build_analytics(s.posthog_api_key, s.posthog_host, s.analytics_budget_seconds)

    def built(self, name: str):
        """The dependency if it was built already, else None (so a request never builds one just to flush it)."""
        return self.__dict__.get(name)
