"""Shared test setup. The environment (which database and Redis) is chosen earlier, by the
`scripts.testenv` plugin that pyproject's addopts loads before pytest-django reads the settings."""

pytest_plugins = ["web.testing"]


def pytest_runtest_setup(item):
    if item.get_closest_marker("postgres") is None:
        return
    from django.conf import settings

    if settings.DATABASES["default"]["ENGINE"] != "django.db.backends.postgresql":
        import pytest

        pytest.skip("needs PostgreSQL: row locks, SKIP LOCKED and constraints that SQLite does not have")
