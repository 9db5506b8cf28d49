"""{{ cookiecutter.project_name | replace('\\', '') | replace('"', '') }}: an API and a scheduler sharing one database."""

from importlib.metadata import version

PROJECT_NAME = {{ cookiecutter.project_name | tojson }}
# pyproject.toml holds the version; the installed metadata carries it here.
__version__ = version("{{ cookiecutter.project_slug }}")
