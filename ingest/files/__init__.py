"""Activity files (FIT, GPX, TCX, optionally gzipped) as runs: readers and the importer.

`import_files` (paths, for the command line) and `import_bytes` (an upload's bytes and name, for
the web app) are the entry points; see `ingest.files.importer` and docs/IMPORT.md.
"""

from ingest.files.importer import (
    FileOutcome,
    RunOutcome,
    UnknownAthleteError,
    import_bytes,
    import_files,
)

__all__ = ["FileOutcome", "RunOutcome", "UnknownAthleteError", "import_bytes", "import_files"]
