"""One script per paper table / study; each writes ``results/<name>.csv`` and ``.md`` with its command."""
