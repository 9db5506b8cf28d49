"""{{ cookiecutter.project_name | replace('\\', '') | replace('"', '') }}: an API and a scheduler sharing one database."""

from importlib.metadata import version

PROJECT_NAME = {{ cookiecutter.project_name | tojson }}
# The distribution's name, which is also the command-line tool's.
COMMAND = "{{ cookiecutter.project_slug }}"
# Every setting's environment variable starts with this (see app/core/settings.py).
ENV_PREFIX = "{{ cookiecutter.__env_prefix }}"
# pyproject.toml holds the version; the installed metadata carries it here.
__version__ = version(COMMAND)
