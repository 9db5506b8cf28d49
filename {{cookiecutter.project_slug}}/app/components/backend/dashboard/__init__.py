"""The web dashboard at /dashboard: server-rendered pages of jobs, runs and the scheduler.

Pages are Jinja2 templates with the project's own stylesheet and one small script that keeps
the marked parts of a page current. Nothing is loaded from elsewhere: it works offline.
"""
