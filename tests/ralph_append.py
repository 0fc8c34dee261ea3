"""Run ralph's LRS (``ralph runserver --backend fs`` without its reloader) with its file-system
backend appending to the statements file.

ralph 5's FS LRS backend writes with its data backend's default operation, ``create``, which
refuses a file that exists: its second POST of new statements fails with a 500 ("already exists
and overwrite is not allowed"). Run by the tests with ralph's own Python; takes the host and
the port, and the settings from the environment (``RALPH_*``), as ``runserver`` would.
"""

import sys

import uvicorn
from ralph.backends.data.base import BaseOperationType
from ralph.backends.lrs.fs import FSLRSBackend

FSLRSBackend.default_operation_type = BaseOperationType.APPEND

if __name__ == "__main__":
    uvicorn.run("ralph.api:app", host=sys.argv[1], port=int(sys.argv[2]), log_level="info")
