"""{{ cookiecutter.project_name | replace('\\', '') | replace('"', '') }}: an API and a scheduler sharing one database."""

PROJECT_NAME = {{ cookiecutter.project_name | tojson }}
