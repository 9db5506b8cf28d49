"""{{ cookiecutter.project_name | replace('\\', '') | replace('"', '') }}: an API and a scheduler sharing one database."""

from importlib.metadata import version

PROJECT_NAME = {{ cookiecutter.project_name | tojson }}
# The distribution's name, which is also the command-line tool's.
COMMAND = "{{ cookiecutter.project_slug }}"
# pyproject.toml holds the version; the installed metadata carries it here.
__version__ = version(COMMAND)
