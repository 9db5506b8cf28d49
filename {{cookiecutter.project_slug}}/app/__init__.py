{#- The name as Python source, quoted the way ruff format would: double quotes unless the name
    has more double than single quotes; in parentheses where only they make the line fit. #}
{%- set name = cookiecutter.project_name | replace('\\', '\\\\') -%}
{%- if name.count('"') > name.count("'") -%}
{%- set literal = "'" ~ (name | replace("'", "\\'")) ~ "'" -%}
{%- else -%}
{%- set literal = '"' ~ (name | replace('"', '\\"')) ~ '"' -%}
{%- endif -%}
"""The application's identity: its name, its command and its settings' prefix."""

from importlib.metadata import version

{% if 85 < literal | length <= 96 -%}
PROJECT_NAME = (
    {{ literal }}
)
{% else -%}
PROJECT_NAME = {{ literal }}
{% endif -%}
# The distribution's name, which is also the command-line tool's.
COMMAND = "{{ cookiecutter.project_slug }}"
# Every setting's environment variable starts with this (see app/core/settings.py).
ENV_PREFIX = "{{ cookiecutter.__env_prefix }}"
# pyproject.toml holds the version; the installed metadata carries it here.
__version__ = version(COMMAND)
