{#- The name as Python source, quoted the way ruff format would: double quotes unless the name
    has more double than single quotes. #}
{%- set name = cookiecutter.project_name | replace('\\', '\\\\') -%}
"""The application's identity: its name, its command and its settings' prefix."""

from importlib.metadata import version

{% if name.count('"') > name.count("'") -%}
PROJECT_NAME = '{{ name | replace("'", "\\'") }}'
{% else -%}
PROJECT_NAME = "{{ name | replace('"', '\\"') }}"
{% endif -%}
# The distribution's name, which is also the command-line tool's.
COMMAND = "{{ cookiecutter.project_slug }}"
# Every setting's environment variable starts with this (see app/core/settings.py).
ENV_PREFIX = "{{ cookiecutter.__env_prefix }}"
# pyproject.toml holds the version; the installed metadata carries it here.
__version__ = version(COMMAND)
