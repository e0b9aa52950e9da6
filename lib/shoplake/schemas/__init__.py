"""Table specifications, one module per domain; :mod:`shoplake.lake.catalog` collects them."""
