"""The API process: `python -m app.entrypoints.api`."""

from __future__ import annotations

import uvicorn

from app.components.backend.main import create_app
from app.entrypoints._startup import start_process


def main() -> None:
    """Serve the API until SIGTERM or SIGINT."""
    settings = start_process()
    # log_config=None keeps uvicorn from replacing the logging set up above.
    uvicorn.run(
        create_app(settings), host=settings.api_host, port=settings.api_port, log_config=None
    )


if __name__ == "__main__":
    main()
